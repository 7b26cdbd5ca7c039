"""Redis is down when the last approval arrives. The vote and the approval commit and the
reviewer sees success with "queued"; when Redis is back, the reconciler queues the transition
and a worker carries it out.

The test stops a private redis-server of its own (never the machine's Redis). django-rq reads
RQ_QUEUES from Django's settings on each lookup, so the test points the transitions queue at the
private Redis through the settings fixture, for the web view running in this process; the worker
process gets the same address through REDIS_URL.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from quorum.localservices import port_of, start_embedded_redis
from registry.content import digest_missing
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.execution import jobs
from reviews.models import AuditEvent, Decision, Execution, TransitionRequest, Vote
from tests.mlflow_registry import register_in_mlflow
from tests.reliability.checks import audit_holds
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="worker processes share PostgreSQL"
    ),
]


@pytest.fixture
def private_redis(tmp_path, settings):
    """A redis-server of this test's own, behind the transitions queue; `[server]`, restartable."""
    servers = [start_embedded_redis(tmp_path)]
    settings.RQ_QUEUES = {
        **settings.RQ_QUEUES,
        jobs.QUEUE: {**settings.RQ_QUEUES[jobs.QUEUE], "URL": servers[0].url},
    }
    yield servers
    for server in servers:
        server.stop()


def test_last_approval_while_redis_is_down_commits_and_is_carried_out_when_it_returns(
    private_redis, workers, client, tmp_path, mlflow_server, mlflow_client, unique_name, policies
):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(model=unique_name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    request = opening.request_create(
        model=unique_name, version=2, target="Production", requester=policies["requester"]
    )
    for voter in ("lead", "scientist1"):
        voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")
    redis = private_redis[0]
    redis.stop()

    client.force_login(policies["scientist2"])
    response = client.post(
        reverse("reviews:vote", args=[request.pk]), {"decision": "approve"}, follow=True
    )

    assert response.status_code == 200
    assert "quorum reached, the transition is queued" in response.content.decode()
    request.refresh_from_db()
    assert (request.decision, request.execution) == (Decision.APPROVED, Execution.QUEUED)
    assert Vote.objects.filter(request=request).count() == 3
    assert AuditEvent.objects.filter(action="request.approved", request=request).count() == 1

    back = start_embedded_redis(tmp_path, port=port_of(redis.url))
    private_redis.append(back)
    call_command("reconcile")
    requeued = AuditEvent.objects.get(action="transition.requeued", request=request)
    assert requeued.details == {"job_status": "missing", "requeue": 1}

    workers.start(mlflow_url=mlflow_server.url, redis_url=back.url)
    wait_for(
        lambda: TransitionRequest.objects.get(pk=request.pk).execution == Execution.DONE,
        timeout=60,
        message="the transition to be carried out",
    )
    assert mlflow_client.get_version(unique_name, 2).stage == "Production"
    audit_holds()
