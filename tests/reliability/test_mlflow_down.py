"""Item 3: MLflow is down when quorum is reached. A real worker process with the scheduler runs
the job and its retries at real intervals (QUORUM_TRANSITION_RETRY_INTERVALS): the request ends
`failed` with the error when MLflow stays down, and `done` when MLflow is back before the retries
run out.

tests/test_transitions.py covers the admin's retry after a `failed` end, with retries that do not
wait; this module covers recovery inside the retry window, as workers run in production.
"""

from __future__ import annotations

import pytest
from django.db import connection

from quorum.localservices import port_of, start_mlflow_server
from registry.mlflow_client import RegistryClient
from registry.sync import sync_registry
from reviews import services
from reviews.models import AuditEvent, Execution, TransitionRequest
from tests.reliability.conftest import audit_holds, wait_for
from tests.test_sync import register

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="worker processes share PostgreSQL"
    ),
]


@pytest.fixture
def decide(workers, private_mlflow, policies, settings):
    """`decide(intervals)`: MLflow stops, then the production quorum approves v2 of "churn" with
    those retry intervals, and a worker with the scheduler starts; returns the request."""
    server = private_mlflow[0]
    register(RegistryClient(server.url), "churn", versions=2)
    sync_registry(client=RegistryClient(server.url))

    def run(intervals: list[int]) -> TransitionRequest:
        settings.QUORUM_TRANSITION_RETRY_INTERVALS = intervals  # the job carries its Retry
        server.stop()
        request = services.request_create(
            model="churn", version=2, target="Production", requester=policies["requester"]
        )
        for voter in ("lead", "scientist1", "scientist2"):
            services.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")
        workers.start(mlflow_url=server.url, scheduler=True)
        return request

    return run


def attempts(request) -> list[str]:
    events = AuditEvent.objects.filter(request=request, action__startswith="transition.")
    return list(events.order_by("sequence").values_list("action", flat=True))


def execution_of(request) -> str:
    return TransitionRequest.objects.values_list("execution", flat=True).get(pk=request.pk)


def test_mlflow_down_for_good_fails_after_every_retry_with_the_error(decide):
    request = decide([1, 1])

    wait_for(lambda: execution_of(request) == Execution.FAILED, timeout=60, what="failed")

    request.refresh_from_db()
    assert request.execution_attempts == 3
    assert "MLflow" in request.execution_error
    retried = ["transition.started", "transition.attempt_failed"] * 2
    assert attempts(request) == [*retried, "transition.started", "transition.failed"]
    audit_holds()


def test_mlflow_back_before_the_retries_run_out_ends_done(decide, private_mlflow):
    down = private_mlflow[0]
    request = decide([8, 8, 8])
    wait_for(
        lambda: "transition.attempt_failed" in attempts(request),
        timeout=60,
        what="the first attempt to fail",
    )
    assert execution_of(request) == Execution.QUEUED  # waiting for its retry, not failed

    back = start_mlflow_server(down.store_dir, port=port_of(down.url))
    private_mlflow.append(back)
    wait_for(lambda: execution_of(request) == Execution.DONE, timeout=60, what="done")

    request.refresh_from_db()
    assert request.execution_error == ""
    assert "transition.failed" not in attempts(request)
    assert attempts(request)[-1] == "transition.done"
    assert 2 <= request.execution_attempts <= 4
    assert RegistryClient(back.url).get_version("churn", 2).stage == "Production"
    audit_holds()
