"""MLflow goes away right after it moved the version: the transition is done, once, its move is
in the mirror (recorded from MLflow's answer to it, which needs no further read), and the sync
that follows it is retried on its own until MLflow answers again.

A proxy in front of MLflow lets the transition and its answer through, then closes every
connection until healed. A real worker (all queues, with its scheduler) runs the transition and
then the follow-up sync job, which fails and is retried with backoff; nothing runs the transition
again.
"""

from __future__ import annotations

import django_rq
import pytest
from django.db import connection

from registry.content import digest_missing
from registry.jobs import SYNC_QUEUE
from registry.models import ChangeKind, RegistryChange, SyncKind, SyncRun
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.models import AuditEvent, Execution, TransitionRequest
from tests.factories import transition_actions
from tests.mlflow_registry import register_in_mlflow
from tests.reliability.checks import audit_holds
from tests.reliability.proxy import HoldingProxy
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="worker processes share PostgreSQL"
    ),
]


def test_a_follow_up_sync_that_fails_after_the_move_is_retried_alone_and_the_request_is_done(
    workers, mlflow_server, mlflow_client, unique_name, policies, settings
):
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = []  # a second transition would be a bug here
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(model=unique_name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    proxy = HoldingProxy(int(mlflow_server.url.rsplit(":", 1)[1]), cut_after_transition=True)
    try:
        # The worker's follow-up syncs retry every 2 s for up to a minute.
        retries = {"QUORUM_TRANSITION_RETRY_INTERVALS": "2", "QUORUM_TRANSITION_RETRY_WINDOW": "60"}
        workers.start(mlflow_url=proxy.url, scheduler=True, env=retries)
        request = opening.request_create(
            model=unique_name, version=2, target="Production", requester=policies["requester"]
        )
        for voter in ("lead", "scientist1", "scientist2"):
            voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")

        wait_for(
            lambda: TransitionRequest.objects.get(pk=request.pk).execution == Execution.DONE,
            timeout=60,
            message="the request to be done",
        )
        syncs = SyncRun.objects.filter(model_name=unique_name)
        wait_for(lambda: syncs.failed().count() >= 2, timeout=60, message="the sync to fail twice")
        # The job recorded its own move, credited to the request, though MLflow is away.
        [moved] = RegistryChange.objects.filter(
            version=request.version, kind=ChangeKind.STAGE_CHANGED
        )
        assert (moved.new, list(moved.caused_by.all())) == ("Production", [request])
        succeeded_before = syncs.succeeded().count()

        proxy.heal()
        wait_for(
            lambda: syncs.succeeded().count() > succeeded_before,
            timeout=60,
            message="a retry of the follow-up sync to succeed",
        )
    finally:
        proxy.close()

    request.refresh_from_db()
    assert (request.execution, request.execution_attempts) == (Execution.DONE, 1)
    assert transition_actions(request) == ["transition.started", "transition.done"]
    assert proxy.transition_requests == 1 and proxy.refused >= 2
    assert mlflow_client.get_version(unique_name, 2).stage == "Production"
    change = RegistryChange.objects.get(version=request.version, kind=ChangeKind.STAGE_CHANGED)
    assert (change.new, change.origin) == ("Production", "quorum")
    assert not AuditEvent.objects.filter(action="registry.out_of_band").exists()
    # One sync job, retried: its failed runs and then its successful one, after the test's own.
    queue = django_rq.get_queue(SYNC_QUEUE)
    # (The evidence fetch and content digest a sync may queue after it are jobs of their own.)
    later = {"registry.jobs.fetch_evidence", "registry.jobs.digest_content"}

    def finished_syncs() -> list[str]:
        jobs = (queue.fetch_job(job_id) for job_id in queue.finished_job_registry.get_job_ids())
        return [job.func_name for job in jobs if job is not None and job.func_name not in later]

    # The sync commits the mirrored move before it reports and RQ records the job finished.
    wait_for(finished_syncs, timeout=60, message="the follow-up sync job to be recorded finished")
    assert finished_syncs() == ["registry.jobs.sync_model"]
    runs = list(SyncRun.objects.filter(model_name=unique_name).finished().order_by("pk"))
    assert [bool(run.error) for run in runs] == [False] + [True] * (len(runs) - 2) + [False]
    assert len(runs) >= 4
    # Besides them, the job's record of its own move, which read nothing from MLflow.
    [move] = SyncRun.objects.filter(model_name=unique_name, kind=SyncKind.MOVE)
    assert move.finished_at is not None and move.error == ""
    audit_holds()
