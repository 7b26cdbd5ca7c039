"""The reconciler: the periodic run that repairs what a crash, an outage or a dead scheduler left.

Every QUORUM_RECONCILE_INTERVAL (quorum/cron.py; `manage.py reconcile` runs it once) it expires
overdue requests, enqueues transition retries no scheduler took, re-queues approved requests whose
job is gone (Redis was down at commit, a worker was killed) a bounded number of times, so that no
decision is lost and none loops, classifies registry changes the change handler missed, and
extends the audit chain's verified checkpoint.

It uses the transition jobs (`reviews.execution.jobs`) and the domain actions
(`reviews.decisions`); neither imports it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from infra import queues

from ..audit import chain, verification
from ..decisions import deciding
from ..models import Decision, Execution, TransitionRequest
from . import attestation, registry_events, reverts, revocation
from .jobs import QUEUE, enqueue_transition, execute_transition, transition_job_id
from .locks import execution_running

logger = logging.getLogger(__name__)

# A retry this late was left behind by a dead scheduler: a live one moves a due retry onto its
# queue within a second or two (`enqueue_overdue_retries`).
OVERDUE_GRACE = timedelta(seconds=10)
# How RQ names the transition job's function in a job record: by its module now, and by the
# module it had before reviews/execution/ (reviews/jobs.py), which retries queued by the previous
# release still name. The old name goes with that shim, in the next release.
TRANSITION_FUNCS = {
    f"{execute_transition.__module__}.{execute_transition.__name__}",
    "reviews.jobs.execute_transition",
}


def reconcile() -> dict:
    """Expires overdue requests, enqueues retries no scheduler took, re-queues approved requests
    whose job is gone (up to QUORUM_TRANSITION_MAX_REQUEUES times each), approval proofs and
    reverts of out-of-band moves whose job was lost, and classifies any registry change the
    change handler has not. Runs every minute; safe to run concurrently."""
    expired = deciding.requests_expire_overdue()
    overdue = enqueue_overdue_retries()
    requeued = requeue_lost_transitions()
    proofs = attestation.requeue_pending()
    classified = registry_events.classify_pending_changes()
    reverts_requeued = reverts.requeue_lost()
    revocations = revocation.requeue_pending()
    verification.extend_verified_checkpoint()
    summary = {
        "expired": len(expired),
        "overdue_retries": len(overdue),
        "requeued": len(requeued),
        "proofs_requeued": len(proofs),
        "classified": classified,
        "reverts_requeued": len(reverts_requeued),
        "revocations_requeued": len(revocations),
    }
    if any(summary.values()):
        logger.info("reconcile: %s", summary)
    return summary


def enqueue_overdue_retries() -> list[str]:
    """Puts retries whose wait is over on their queues when no scheduler did; returns their ids.

    A failed job's retry waits out its backoff in RQ's ScheduledJobRegistry until a scheduler (a
    worker started with --with-scheduler that holds the queue's scheduler lock) moves it onto the
    queue. A worker killed with its scheduler leaves that lock held for a minute, and a worker
    started meanwhile tries to take it again only at its next maintenance, ten minutes later: the
    retry, and the request waiting on it, would sit there with idle workers all along.
    """
    cutoff = int((timezone.now() - OVERDUE_GRACE).timestamp())
    moved = []
    for name in settings.QUORUM_QUEUES:
        queue = queues.get_queue(name)
        registry = queue.scheduled_job_registry
        for job_id in registry.get_jobs_to_schedule(cutoff):
            due = datetime.fromtimestamp(queue.connection.zscore(registry.key, job_id) or 0, UTC)
            # Whoever takes it out of the registry enqueues it: a scheduler that woke up, or this.
            if not queue.connection.zrem(registry.key, job_id):
                continue
            job = queue.fetch_job(job_id)
            if job is None:
                continue
            queue.enqueue_job(job)
            moved.append(job_id)
            if job.func_name in TRANSITION_FUNCS:
                _record_overdue_retry(job.args[0], due)
    return moved


def _record_overdue_retry(request_id: int, due: datetime) -> None:
    with transaction.atomic():
        try:
            request = TransitionRequest.objects.locked(request_id)
        except TransitionRequest.DoesNotExist:  # gone: the retry will find nothing to do
            return
        chain.record(
            "transition.retry_enqueued",
            request=request,
            details={"due": f"{due:%H:%M:%S} UTC", "why": "no scheduler enqueued it"},
        )


def requeue_lost_transitions() -> list[int]:
    """Approved requests waiting on a job that Redis no longer has, that failed for good, or whose
    worker is dead: queued again, or `failed` once they were re-queued
    QUORUM_TRANSITION_MAX_REQUEUES times (a job that keeps getting lost, e.g. one that kills its
    worker, must end in front of a person, not loop).

    RQ notices a killed worker's job only after the worker's heartbeat key expires (a minute or
    more) and only when someone cleans its registry up, so a started job is also presumed lost
    when its last heartbeat is older than QUORUM_TRANSITION_HEARTBEAT_TIMEOUT or its worker has
    left the worker registry. Such a job is re-queued only when no database session holds its
    execution lock: a worker that only looks dead (stalled heartbeat, still carrying out the
    request) keeps it, so the re-queued job could not transition a second time anyway. A job
    waiting for its retry (scheduled) is alive; `enqueue_overdue_retries` handles a late one.
    """
    waiting = list(
        TransitionRequest.objects.filter(
            decision=Decision.APPROVED, execution__in=[Execution.QUEUED, Execution.RUNNING]
        ).only("pk", "created_at")
    )
    if not waiting:
        return []
    queue = queues.get_queue(QUEUE)
    queue.started_job_registry.cleanup()
    requeued = []
    for waiting_request in waiting:
        request_id = waiting_request.pk
        job_id = transition_job_id(waiting_request)
        job: Job | None
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            job, status = None, None
        else:
            status = job.get_status()
        if job is not None and status == JobStatus.STARTED:
            why = _worker_gone(job, queue.connection)
            if why is None or execution_running(request_id):
                continue
            job.delete()  # its record would make `unique=True` refuse the new job
        elif status is not None and status not in queues.FAILED_JOB_STATES:
            continue
        else:
            why = str(status) if status else "missing"
        with transaction.atomic():
            try:
                request = TransitionRequest.objects.locked(request_id)
            except TransitionRequest.DoesNotExist:  # deleted meanwhile: no transition to queue
                continue
            if request.execution not in (Execution.QUEUED, Execution.RUNNING):
                continue
            limit = settings.QUORUM_TRANSITION_MAX_REQUEUES
            if request.execution_requeues >= limit:
                _give_up(request, why, limit)
                continue
            request.execution_requeues += 1
            request.save(update_fields=["execution_requeues"])
            chain.record(
                "transition.requeued",
                request=request,
                details={"job_status": why, "requeue": request.execution_requeues},
            )
            transaction.on_commit(partial(enqueue_transition, request_id, replace=True))
        requeued.append(request_id)
    return requeued


def _give_up(request: TransitionRequest, why: str, limit: int) -> None:
    """Ends a locked request whose job was lost once too often: `failed`, which mails its
    requester and staff (reviews/notify.py), who may retry it once the cause is found."""
    error = (
        f"The transition job was lost {limit + 1} times (last: {why}); "
        "it was not queued again. Check the workers' logs, then retry."
    )
    request.execution = Execution.FAILED
    request.execution_error = error
    request.save(update_fields=["execution", "execution_error"])
    chain.record(
        "transition.failed",
        request=request,
        details={"attempt": request.execution_attempts, "error": error, "requeues": limit},
    )


def _worker_gone(job: Job, redis_connection) -> str | None:
    """Why a started job's worker is presumed dead, or None while it looks alive."""
    timeout = timedelta(seconds=settings.QUORUM_TRANSITION_HEARTBEAT_TIMEOUT)
    beat = job.last_heartbeat or job.started_at
    if beat is not None and timezone.now() - beat > timeout:
        return f"started, no heartbeat since {beat:%H:%M:%S} UTC"
    if job.worker_name and not redis_connection.exists(
        Worker.redis_worker_namespace_prefix + job.worker_name
    ):
        return f"started, worker {job.worker_name} is gone"
    return None
