"""A worker killed mid-job. The reconciler notices at once, a new worker finishes the
request, and MLflow is asked to move the version once.

The worker runs as its own process group (RQ's forking worker and its work horse) against the
test database; a proxy in front of MLflow passes the transition through but holds MLflow's answer,
so the worker dies after MLflow moved the version and before the worker recorded it. RQ would
mark the job abandoned only when the worker's key expires (60 s and more) and someone cleans up;
the reconciler goes by the job's heartbeat (QUORUM_TRANSITION_HEARTBEAT_TIMEOUT) instead, and by
the execution lock a live execution holds, so a worker that only looks dead is left alone.

A worker killed while a retry waits out its backoff leaves the retry in RQ's scheduled registry,
which only a scheduler empties; the reconciler (run by the real cron process here) enqueues it
once it is overdue, so the request is done soon after a new worker starts, not ten minutes later.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import django_rq
import pytest
from django.db import connection
from django.utils import timezone
from rq.job import Job
from rq.scheduler import RQScheduler

from registry.content import digest_missing
from registry.mlflow_client import RegistryClient
from registry.models import ChangeKind, RegistryChange
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.execution import jobs, reconciler, stalls
from reviews.models import AuditEvent, Execution, TransitionRequest
from tests.factories import transition_actions as attempts
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

HEARTBEAT_TIMEOUT = 3  # seconds; the workers here heartbeat every second


@pytest.fixture
def approved(workers, mlflow_server, mlflow_client, unique_name, policies, settings):
    """v2 of a fresh model approved for Production; its job is queued (after `workers` emptied
    the queue)."""
    settings.QUORUM_TRANSITION_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = []
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(model=unique_name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    request = opening.request_create(
        model=unique_name, version=2, target="Production", requester=policies["requester"]
    )
    for voter in ("lead", "scientist1", "scientist2"):
        voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")
    request.refresh_from_db()
    assert request.execution == Execution.QUEUED
    return request


@pytest.fixture
def proxy(mlflow_server):
    held = HoldingProxy(int(mlflow_server.url.rsplit(":", 1)[1]))
    yield held
    held.close()


def stage_changes(request) -> list[str | None]:
    return list(
        RegistryChange.objects.filter(
            version=request.version, kind=ChangeKind.STAGE_CHANGED
        ).values_list("new", flat=True)
    )


def test_a_worker_killed_mid_transition_is_replaced_and_mlflow_moves_once(
    approved, proxy, workers, mlflow_client, unique_name
):
    first = workers.start(mlflow_url=proxy.url)
    wait_for(lambda: proxy.held, timeout=60, message="the transition to reach MLflow")
    wait_for(
        lambda: mlflow_client.get_version(unique_name, 2).stage == "Production",
        timeout=10,
        message="MLflow to carry the transition out",
    )

    workers.kill(first)

    # Its heartbeat is fresh: not presumed dead yet.
    assert reconciler.requeue_lost_transitions() == []
    requeued = wait_for(
        reconciler.requeue_lost_transitions, timeout=HEARTBEAT_TIMEOUT + 10, message="the requeue"
    )
    assert requeued == [approved.pk]
    event = AuditEvent.objects.get(action="transition.requeued", request=approved)
    assert "no heartbeat since" in event.details["job_status"]

    workers.start(mlflow_url=proxy.url)
    wait_for(
        lambda: approved.__class__.objects.get(pk=approved.pk).execution == Execution.DONE,
        timeout=60,
        message="the new worker to finish the request",
    )

    approved.refresh_from_db()
    assert approved.execution_attempts == 2
    assert proxy.transition_requests == 1  # MLflow was asked once
    assert mlflow_client.get_version(unique_name, 2).stage == "Production"
    # The follow-up sync (a job of its own, run by the worker) observes the one move.
    wait_for(lambda: stage_changes(approved), timeout=60, message="the move to be mirrored")
    assert stage_changes(approved) == ["Production"]
    done = AuditEvent.objects.get(action="transition.done", request=approved)
    assert done.details["already_at_target"] is True
    assert reconciler.requeue_lost_transitions() == []
    audit_holds()


def test_a_worker_that_only_looks_dead_keeps_its_job_and_nothing_runs_twice(
    approved, proxy, workers, mlflow_client, unique_name
):
    first = workers.start(mlflow_url=proxy.url)
    wait_for(lambda: proxy.held, timeout=60, message="the transition to reach MLflow")
    # The worker's main process stops heartbeating; its work horse is still carrying the job out.
    os.kill(first.pid, signal.SIGSTOP)
    queue = django_rq.get_queue(jobs.QUEUE)
    job = Job.fetch(jobs.transition_job_id(approved), connection=queue.connection)
    wait_for(
        lambda: reconciler._worker_gone(job, queue.connection),
        timeout=HEARTBEAT_TIMEOUT + 10,
        interval=0.5,
        message="the heartbeat to go stale",
    )

    assert reconciler.requeue_lost_transitions() == []  # its execution still holds the lock
    assert not AuditEvent.objects.filter(action="transition.requeued").exists()

    # Even a second execution started by hand waits for the first instead of racing it.
    results: list[str] = []

    def second_execution():
        try:
            results.append(jobs.execute_transition(approved.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=second_execution)
    thread.start()
    thread.join(1.5)
    assert thread.is_alive(), results

    proxy.release()
    os.kill(first.pid, signal.SIGCONT)
    thread.join(60)

    assert results == [f"request #{approved.pk} was already carried out"]
    approved.refresh_from_db()
    assert (approved.execution, approved.execution_attempts) == (Execution.DONE, 1)
    assert proxy.transition_requests == 1
    # The follow-up sync (a job of its own, run by the worker) observes the one move.
    wait_for(lambda: stage_changes(approved), timeout=60, message="the move to be mirrored")
    assert stage_changes(approved) == ["Production"]
    audit_holds()


# -- a worker killed while a retry was scheduled ------------------------------------------------

RETRY_AFTER = 8  # seconds: the backoff of the first failed attempt
RECONCILE_EVERY = 5  # seconds: QUORUM_RECONCILE_INTERVAL for the cron process here
# seconds: far less than the ten minutes after which a new worker's scheduler would take it
NOT_THE_SCHEDULER = 120


def test_a_worker_killed_with_a_retry_scheduled_is_done_by_the_reconciler_not_ten_minutes_later(
    workers, private_mlflow, policies, settings
):
    """The worker that ran the first attempt (MLflow was down) dies with its scheduler while the
    retry waits in RQ's scheduled registry. Its scheduler lock outlives it by a minute and a new
    worker's scheduler tries again only ten minutes later: the reconciler enqueues the overdue
    retry instead."""
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = [RETRY_AFTER]  # the job carries its Retry
    settings.QUORUM_TRANSITION_RETRY_WINDOW = 0
    server = private_mlflow
    register_in_mlflow(RegistryClient(server.url), "churn", versions=2)
    sync_registry(client=RegistryClient(server.url))
    digest_missing(client=RegistryClient(server.url))  # the digest job that follows a sync
    cron_env = {"QUORUM_RECONCILE_INTERVAL": str(RECONCILE_EVERY)}
    workers.start_cron(mlflow_url=server.url, env=cron_env)
    server.stop()
    request = opening.request_create(
        model="churn", version=2, target="Production", requester=policies["requester"]
    )
    for voter in ("lead", "scientist1", "scientist2"):
        voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")
    first = workers.start(mlflow_url=server.url, scheduler=True)
    queue = django_rq.get_queue(jobs.QUEUE)
    job_id = jobs.transition_job_id(request)
    wait_for(
        lambda: job_id in queue.scheduled_job_registry.get_job_ids(),
        timeout=60,
        message="the first attempt to fail and its retry to be scheduled",
    )

    workers.kill(first)
    # The dead scheduler's lock outlives it by a minute; on a slow machine that minute may pass
    # before the new worker starts, whose scheduler would then take the retry itself. Held for
    # the test's length, it is the case this test is about: no scheduler can run the retry.
    assert queue.connection.expire(RQScheduler.get_locking_key(jobs.QUEUE), 600)

    back = private_mlflow.start()  # on its port, with its store
    due = queue.scheduled_job_registry.get_scheduled_time(job_id)
    wait_for(
        lambda: timezone.now() > due + reconciler.OVERDUE_GRACE,
        timeout=RETRY_AFTER + 30,
        message="the retry to be overdue",
    )
    # The dead worker's scheduler still holds the lock a new worker's scheduler would need.
    assert queue.connection.exists(RQScheduler.get_locking_key(jobs.QUEUE))
    workers.start(mlflow_url=back.url, scheduler=True)
    wait_for(lambda: stalls.consumers(jobs.QUEUE), timeout=60, message="the new worker")
    restarted = time.monotonic()

    # Without the reconciler the retry waits for a scheduler: ten minutes. With it, the next
    # reconcile (every RECONCILE_EVERY s) queues it; how soon a loaded machine then runs it is a
    # matter for benchmarks, so the bound only tells the two mechanisms apart.
    wait_for(
        lambda: TransitionRequest.objects.get(pk=request.pk).execution == Execution.DONE,
        timeout=NOT_THE_SCHEDULER,
        message="the request to be done by the reconciler's re-queue, not a later scheduler",
    )

    print(f"done {time.monotonic() - restarted:.1f} s after the new worker started")
    request.refresh_from_db()
    assert request.execution_attempts == 2
    assert attempts(request) == [
        "transition.started",
        "transition.attempt_failed",
        "transition.retry_enqueued",
        "transition.started",
        "transition.done",
    ]
    assert RegistryClient(back.url).get_version("churn", 2).stage == "Production"
    audit_holds()
