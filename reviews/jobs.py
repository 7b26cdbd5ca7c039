"""RQ jobs of the review engine: carrying out approved transitions in MLflow, and reconciling.

`execute_transition` is idempotent: it reads MLflow first and only records success when the
version is already at its target, so a retried, duplicated or re-enqueued job never transitions
twice. Its job id is derived from the request (`transition_job_id`, enqueued with `unique=True`), so
concurrent enqueues produce one job. Once MLflow shows the version at its target the request is
`done`: the sync that mirrors the move is a job of its own, coalesced per model and retried on its
own, so a failing sync never runs the transition again. Any exception is recorded on the request;
a failed attempt is retried with backoff for QUORUM_TRANSITION_RETRY_WINDOW, then the request is
`failed` and its requester and staff are mailed.

The reconciler finds approved requests whose job is gone (Redis was down at commit, a worker was
killed) and enqueues them again, a bounded number of times: no decision is lost, and none loops.
It also enqueues retries left behind by a dead scheduler.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rq import Retry, get_current_job
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from quorum import queues
from registry.jobs import enqueue_model_sync
from registry.mlflow_client import MlflowError, MlflowVersion, RegistryClient

from . import audit, standing
from .models import Decision, Execution, TransitionRequest

logger = logging.getLogger(__name__)

QUEUE = "transitions"
# Job states after which a request still marked queued/running needs a new job.
DEAD_JOB_STATES = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
# A retry this late was left behind by a dead scheduler: a live one moves a due retry onto its
# queue within a second or two (`enqueue_overdue_retries`).
OVERDUE_GRACE = timedelta(seconds=10)
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
        queue = queues.get_queue(QUEUE)
        if replace:
            _drop_finished_job(job_id, queue.connection)
        queue.enqueue(
            execute_transition,
            request_id,
            job_id=job_id,
            unique=True,
            retry=retry_policy(),
            job_timeout=settings.QUORUM_TRANSITION_TIMEOUT,
            description=f"transition for request #{request_id}",
        )
    except DuplicateJobError:
        return False
    except (redis.RedisError, OSError) as error:
        logger.warning("could not queue request #%s (%s); the reconciler will", request_id, error)
        return False
    return True


def retry_policy() -> Retry | None:
    """How a failed transition (and its follow-up sync) is retried: after each interval of
    QUORUM_TRANSITION_RETRY_INTERVALS, then after its last interval again until the waits add up
    to QUORUM_TRANSITION_RETRY_WINDOW.

    An outage shorter than the window ends `done` without anyone's help; only a longer one ends
    `failed`, with mail asking an admin to retry.
    """
    intervals = list(settings.QUORUM_TRANSITION_RETRY_INTERVALS)
    if intervals and intervals[-1] > 0:
        while sum(intervals) < settings.QUORUM_TRANSITION_RETRY_WINDOW:
            intervals.append(intervals[-1])
    return Retry(max=len(intervals), interval=intervals) if intervals else None


def _drop_finished_job(job_id: str, connection) -> None:
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return
    if job.get_status(refresh=False) in DEAD_JOB_STATES | {JobStatus.FINISHED}:
        job.delete()


def execute_transition(request_id: int) -> str:
    """Carries out one approved request in MLflow; a sync of its model follows as a job of its
    own. Safe to run twice. Any exception is recorded on the request and in the audit trail
    before RQ sees it (and retries it, while retries are left)."""
    with execution_lock(request_id):
        try:
            return _carry_out(request_id)
        except Exception as error:
            _record_error(request_id, error)
            raise


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
    from . import services

    with transaction.atomic():
        request = _lock(request_id)
        if request is None or request.decision != Decision.APPROVED:
            return f"request #{request_id} is not approved: nothing to do"
        if request.execution == Execution.DONE:
            return f"request #{request_id} was already carried out"
        if request.execution not in (Execution.QUEUED, Execution.RUNNING):
            # Failed for good (a stray retry after the end): only an admin's retry runs it again.
            return f"request #{request_id} is {request.execution}: nothing to do"
        request.execution = Execution.RUNNING
        request.execution_attempts += 1
        request.execution_started_at = timezone.now()
        request.save(update_fields=["execution", "execution_attempts", "execution_started_at"])
        audit.record(
            "transition.started", request=request, details={"attempt": request.execution_attempts}
        )
    name, number, target = request.version.model.name, request.version.version, request.target
    client = RegistryClient()
    current, holders = _read(client, request)
    if current is None:
        # For good: MLflow never reuses a version number, so no retry can help (the page says
        # so instead of offering one), and the mirror's sync will record the deletion.
        _fail(
            request_id,
            f"{name} version {number} no longer exists in MLflow.",
            final=True,
            permanent=True,
        )
        _queue_follow_up_sync(name)
        return "failed: version gone"
    already = target[1:] in current.aliases if request.is_alias_target else current.stage == target
    if not already:
        if request.is_alias_target:
            client.set_alias(name, request.alias, number)
        else:
            client.transition_stage(name, number, target, archive_existing=request.archives_holders)
    # From here on the version is at its target: whatever happens next, the request is done and
    # this job never moves MLflow again (a retry would read it there and only record it).
    request.execution, request.executed_at = Execution.DONE, timezone.now()
    request.execution_error = ""
    # Unless the mirror shows it there already, a sync will observe the move: credit it then.
    request.awaiting_mirror = not services.is_at_target(request.version, target)
    with transaction.atomic():
        recorded = TransitionRequest.objects.filter(
            pk=request_id, execution=Execution.RUNNING
        ).update(
            execution=request.execution,
            executed_at=request.executed_at,
            execution_error=request.execution_error,
            awaiting_mirror=request.awaiting_mirror,
        )
        if not recorded:  # another run recorded it (SQLite: no execution lock to wait on)
            return f"request #{request_id} was already carried out"
        audit.record(
            "transition.done",
            request=request,
            details={"already_at_target": already, "archived_versions": [] if already else holders},
        )
    _queue_follow_up_sync(name)
    return f"{name} version {number} is at {target}"


def _read(client: RegistryClient, request: TransitionRequest) -> tuple[MlflowVersion | None, list]:
    """The version as MLflow has it now, and (when the move archives them) the other versions in
    its target stage, which the move will archive."""
    name, number = request.version.model.name, request.version.version
    if not request.archives_holders:
        return client.get_version(name, number), []
    versions = client.list_versions(name)  # one call, like get_version, with every stage
    current = next((v for v in versions if v.version == number), None)
    holders = sorted(v.version for v in versions if v.stage == request.target and v is not current)
    return current, holders


def _queue_follow_up_sync(name: str) -> None:
    """Queues the mirror's sync of the model the transition moved: its own job, one per model
    however many of its transitions finish meanwhile (`enqueue_model_sync` coalesces them), and
    retried on its own when it fails. The periodic sync is the backstop when Redis refuses."""
    job = get_current_job()
    try:
        # The job's connection: django-rq would open a new one for every transition.
        enqueue_model_sync(name, retry=retry_policy(), connection=job.connection if job else None)
    except (redis.RedisError, OSError) as error:
        logger.warning("could not queue the sync of %r (%s); the periodic sync will", name, error)


def _record_error(request_id: int, error: Exception) -> None:
    """Records a job's exception as the request's execution error: the attempt failed (a retry
    follows) or, on the last attempt, the transition failed (its requester and staff are told)."""
    job = get_current_job()
    final = job is None or not job.retries_left
    message = str(error) if isinstance(error, MlflowError) else f"{type(error).__name__}: {error}"
    try:
        _fail(request_id, message, final=final)
    except Exception:  # the database itself is what failed: the reconciler finds the job later
        logger.exception("request #%s: could not record its error %r", request_id, message)


def _fail(request_id: int, error: str, *, final: bool, permanent: bool = False) -> None:
    with transaction.atomic():
        request = _lock(request_id)
        if request is None or request.execution in (Execution.DONE, Execution.FAILED):
            return
        request.execution = Execution.FAILED if final else Execution.QUEUED
        request.execution_error = error
        request.save(update_fields=["execution", "execution_error"])
        audit.record(
            "transition.failed" if final else "transition.attempt_failed",
            request=request,
            details={
                "attempt": request.execution_attempts,
                "error": error,
                **({standing.PERMANENT: True} if permanent else {}),
            },
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
    """Expires overdue requests, enqueues retries no scheduler took, re-queues approved requests
    whose job is gone (up to QUORUM_TRANSITION_MAX_REQUEUES times each), and classifies any
    registry change the change handler has not. Runs every minute; safe to run concurrently."""
    from . import registry_events, services

    expired = services.requests_expire_overdue()
    overdue = enqueue_overdue_retries()
    requeued = requeue_lost_transitions()
    classified = registry_events.classify_pending_changes()
    audit.extend_verified_checkpoint()
    summary = {
        "expired": len(expired),
        "overdue_retries": len(overdue),
        "requeued": len(requeued),
        "classified": classified,
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
            if job.func_name == f"{__name__}.{execute_transition.__name__}":
                _record_overdue_retry(job.args[0], due)
    return moved


def _record_overdue_retry(request_id: int, due: datetime) -> None:
    with transaction.atomic():
        request = _lock(request_id)
        if request is not None:
            audit.record(
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
            limit = settings.QUORUM_TRANSITION_MAX_REQUEUES
            if request.execution_requeues >= limit:
                _give_up(request, why, limit)
                continue
            request.execution_requeues += 1
            request.save(update_fields=["execution_requeues"])
            audit.record(
                "transition.requeued",
                request=request,
                details={"job_status": why, "requeue": request.execution_requeues},
            )
            transaction.on_commit(lambda rid=request_id: enqueue_transition(rid, replace=True))
        requeued.append(request_id)
    return requeued


def _give_up(request: TransitionRequest, why: str, limit: int) -> None:
    """Ends a locked request whose job was lost once too often: `failed`, which mails its
    requester and staff (`reviews.notify`), who may retry it once the cause is found."""
    error = (
        f"The transition job was lost {limit + 1} times (last: {why}); "
        "it was not queued again. Check the workers' logs, then retry."
    )
    request.execution = Execution.FAILED
    request.execution_error = error
    request.save(update_fields=["execution", "execution_error"])
    audit.record(
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
