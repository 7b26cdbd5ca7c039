"""RQ jobs of the review engine: carrying out approved transitions in MLflow, and reconciling.

`execute_transition` is idempotent: it reads MLflow first and only records success when the
version is already at its target, so a retried, duplicated or re-enqueued job never transitions
twice. Its job id is derived from the request (`transition_job_id`, enqueued with `unique=True`), so
concurrent enqueues produce one job. The reconciler finds approved requests whose job is gone
(Redis was down at commit, a worker was killed) and enqueues them again: no decision is lost.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta

import django_rq
import redis
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rq import Retry, get_current_job
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from registry.mlflow_client import MlflowError, RegistryClient
from registry.models import ChangeKind
from registry.sync import SyncError, sync_registry

from . import audit
from .models import Decision, Execution, TransitionRequest

logger = logging.getLogger(__name__)

QUEUE = "transitions"
# Job states after which a request still marked queued/running needs a new job.
DEAD_JOB_STATES = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
# First half of the PostgreSQL advisory lock key an execution holds (the request id is the other).
EXECUTION_LOCK_SPACE = 0x5152  # "QR"


def transition_job_id(request: TransitionRequest) -> str:
    """The one job id a request's transition ever has.

    The creation time is part of it: a finished job's record outlives it in Redis, and after a
    database restore (or with two Quorum databases on one Redis) a request id alone would name an
    old job, and `unique=True` would silently refuse the new one.
    """
    return f"transition-{request.pk}-{int(request.created_at.timestamp() * 1_000_000)}"


def enqueue_transition(request_id: int, *, replace: bool = False) -> bool:
    """Queues the transition job once; True if this call queued it.

    Never raises for Redis trouble: the request is already approved in the database and the
    reconciler will queue it when Redis answers again. `replace` drops a finished or failed job
    record first (an admin's retry).
    """
    request = TransitionRequest.objects.filter(pk=request_id).only("pk", "created_at").first()
    if request is None:
        return False
    job_id = transition_job_id(request)
    try:
        queue = django_rq.get_queue(QUEUE)
        if replace:
            _drop_finished_job(job_id, queue.connection)
        intervals = settings.QUORUM_TRANSITION_RETRY_INTERVALS
        queue.enqueue(
            execute_transition,
            request_id,
            job_id=job_id,
            unique=True,
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
            job_timeout=settings.QUORUM_TRANSITION_TIMEOUT,
            description=f"transition for request #{request_id}",
        )
    except DuplicateJobError:
        return False
    except (redis.RedisError, OSError) as error:
        logger.warning("could not queue request #%s (%s); the reconciler will", request_id, error)
        return False
    return True


def _drop_finished_job(job_id: str, connection) -> None:
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return
    if job.get_status(refresh=False) in DEAD_JOB_STATES | {JobStatus.FINISHED}:
        job.delete()


def execute_transition(request_id: int) -> str:
    """Carries out one approved request in MLflow, then re-syncs the model. Safe to run twice."""
    with execution_lock(request_id):
        return _carry_out(request_id)


@contextlib.contextmanager
def execution_lock(request_id: int) -> Iterator[None]:
    """One execution of a request at a time, across workers and hosts (PostgreSQL).

    Reading MLflow first makes a second run harmless only once the first has finished; two runs
    that overlap could both read "not there yet" and both transition. The reconciler may re-queue
    a job whose worker merely looks dead (a stalled heartbeat), so the second run waits here
    until the first ends. The lock belongs to the database session: a killed worker's connection
    closes and PostgreSQL releases it at once. SQLite (one machine, the demo) has no such lock.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [EXECUTION_LOCK_SPACE, request_id])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [EXECUTION_LOCK_SPACE, request_id]
                )
        except DatabaseError:  # the session is gone, and its lock with it
            logger.warning("request #%s: execution lock released with its session", request_id)


def _execution_running(request_id: int) -> bool:
    """Whether a live database session is carrying out this request now."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [EXECUTION_LOCK_SPACE, request_id])
        if not cursor.fetchone()[0]:
            return True
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [EXECUTION_LOCK_SPACE, request_id])
    return False


def _carry_out(request_id: int) -> str:
    with transaction.atomic():
        request = _lock(request_id)
        if request is None or request.decision != Decision.APPROVED:
            return f"request #{request_id} is not approved: nothing to do"
        if request.execution == Execution.DONE:
            return f"request #{request_id} was already carried out"
        request.execution = Execution.RUNNING
        request.execution_attempts += 1
        request.execution_started_at = timezone.now()
        request.save(update_fields=["execution", "execution_attempts", "execution_started_at"])
        audit.record(
            "transition.started", request=request, details={"attempt": request.execution_attempts}
        )
    name, number, target = request.version.model.name, request.version.version, request.target
    client = RegistryClient()
    try:
        current = client.get_version(name, number)
        if current is None:
            _fail(request_id, f"{name} version {number} no longer exists in MLflow.", final=True)
            return "failed: version gone"
        already = (
            target[1:] in current.aliases if target.startswith("@") else current.stage == target
        )
        if not already:
            if target.startswith("@"):
                client.set_alias(name, target[1:], number)
            else:
                client.transition_stage(
                    name,
                    number,
                    target,
                    archive_existing=request.policy_snapshot.get("archive_existing", False),
                )
        # The sync observes what moved; the change handler credits it to this running request.
        sync_registry(model=name, client=client)
    except (MlflowError, SyncError) as error:
        job = get_current_job()
        _fail(request_id, str(error), final=job is None or not job.retries_left)
        raise
    with transaction.atomic():
        request = _lock(request_id)
        request.execution = Execution.DONE
        request.executed_at = timezone.now()
        request.execution_error = ""
        request.save(update_fields=["execution", "executed_at", "execution_error"])
        archived = sorted(
            change.version.version
            for change in request.caused_changes.select_related("version")
            if change.kind == ChangeKind.STAGE_CHANGED
            and change.new == "Archived"
            and change.version_id != request.version_id
        )
        audit.record(
            "transition.done",
            request=request,
            details={"already_at_target": already, "archived_versions": archived},
        )
    return f"{name} version {number} is at {target}"


def _fail(request_id: int, error: str, *, final: bool) -> None:
    with transaction.atomic():
        request = _lock(request_id)
        if request is None or request.execution == Execution.DONE:
            return
        request.execution = Execution.FAILED if final else Execution.QUEUED
        request.execution_error = error
        request.save(update_fields=["execution", "execution_error"])
        audit.record(
            "transition.failed" if final else "transition.attempt_failed",
            request=request,
            details={"attempt": request.execution_attempts, "error": error},
        )


def _lock(request_id: int) -> TransitionRequest | None:
    return (
        TransitionRequest.objects.select_for_update(of=("self",))
        .select_related("version__model")
        .filter(pk=request_id)
        .first()
    )


# -- the reconciler ---------------------------------------------------------------------------


def reconcile() -> dict:
    """Expires overdue requests, re-queues approved ones whose job is gone, and classifies any
    registry change the change handler has not. Runs every minute; safe to run concurrently."""
    from . import registry_events, services

    expired = services.requests_expire_overdue()
    requeued = requeue_lost_transitions()
    classified = registry_events.classify_pending_changes()
    audit.extend_verified_checkpoint()
    summary = {"expired": len(expired), "requeued": len(requeued), "classified": classified}
    if any(summary.values()):
        logger.info("reconcile: %s", summary)
    return summary


def requeue_lost_transitions() -> list[int]:
    """Approved requests waiting on a job that Redis no longer has, that failed for good, or whose
    worker is dead.

    RQ notices a killed worker's job only after the worker's heartbeat key expires (a minute or
    more) and only when someone cleans its registry up, so a started job is also presumed lost
    when its last heartbeat is older than QUORUM_TRANSITION_HEARTBEAT_TIMEOUT or its worker has
    left the worker registry. Such a job is re-queued only when no database session holds its
    execution lock: a worker that only looks dead (stalled heartbeat, still carrying out the
    request) keeps it, so the re-queued job could not transition a second time anyway.
    """
    waiting = list(
        TransitionRequest.objects.filter(
            decision=Decision.APPROVED, execution__in=[Execution.QUEUED, Execution.RUNNING]
        ).only("pk", "created_at")
    )
    if not waiting:
        return []
    queue = django_rq.get_queue(QUEUE)
    queue.started_job_registry.cleanup()
    requeued = []
    for waiting_request in waiting:
        request_id = waiting_request.pk
        job_id = transition_job_id(waiting_request)
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            job, status = None, None
        else:
            status = job.get_status()
        if status == JobStatus.STARTED:
            why = _worker_gone(job, queue.connection)
            if why is None or _execution_running(request_id):
                continue
            job.delete()  # its record would make `unique=True` refuse the new job
        elif status is not None and status not in DEAD_JOB_STATES:
            continue
        else:
            why = str(status) if status else "missing"
        with transaction.atomic():
            request = _lock(request_id)
            if request.execution not in (Execution.QUEUED, Execution.RUNNING):
                continue
            audit.record("transition.requeued", request=request, details={"job_status": why})
            transaction.on_commit(lambda rid=request_id: enqueue_transition(rid, replace=True))
        requeued.append(request_id)
    return requeued


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
