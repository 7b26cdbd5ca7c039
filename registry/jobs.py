"""The registry's background jobs, run by RQ workers on the `sync` queue.

Jobs take plain arguments (model names), never objects: they are pickled into Redis and may run
long after, in another process.

- `sync_incremental` and `sync_full` are the periodic syncs (`quorum/cron.py` schedules them).
- `sync_model` re-reads one model; the MLflow webhook receiver and the transition job queue it
  through `enqueue_model_sync`, which keeps at most one *queued* sync per model: a burst of webhooks
  while a job waits collapses into that job, and a change that arrives while a job runs gets a
  new one (the job drops its pending marker before it reads MLflow, so it cannot miss the change).
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import django_rq
from redis import Redis
from rq import Retry, get_current_job

from quorum import queues

from .sync import sync_registry

logger = logging.getLogger(__name__)

SYNC_QUEUE = "sync"
# The marker normally lives until its job starts. A marker whose job is gone (the queue was
# emptied, Redis restored from an old snapshot) is taken over by the next sync queued; the
# expiry is the last resort.
PENDING_TTL_SECONDS = 15 * 60
PENDING_PREFIX = "quorum:sync:pending:"

# Sets the marker to a new job unless it names a job that still exists. (Between setting the
# marker and writing its job a concurrent caller may find no job and queue one more sync: a
# duplicate sync is harmless; a missing one is not.)
_CLAIM_MARKER = """
local current = redis.call('get', KEYS[1])
if current and redis.call('exists', ARGV[3] .. current) == 1 then
    return 0
end
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

# Deletes the marker only if it still names this job: a marker that expired and was taken by a
# newer queued job must stay, or that job would stop absorbing the webhooks that follow.
_RELEASE_MARKER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def model_key(name: str) -> str:
    """A short, stable token for a model name: names may hold any character, RQ ids may not."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]


def pending_marker(name: str) -> str:
    return PENDING_PREFIX + model_key(name)


def sync_connection() -> Redis:
    return django_rq.get_connection(SYNC_QUEUE)


def enqueue_model_sync(
    name: str, *, retry: Retry | None = None, connection: Redis | None = None
) -> bool:
    """Queues a sync of one model unless one is already waiting; True when a job was queued.

    `retry` retries a failed sync (the transition job's follow-up sync has one; a webhook's sync
    has the periodic sync behind it). `connection`: a Redis connection to reuse (a job's own),
    rather than a new one. Raises `redis.RedisError` when Redis cannot be reached; nothing is
    queued then.
    """
    queue = (
        django_rq.get_queue(SYNC_QUEUE, connection=connection)
        if connection
        else queues.get_queue(SYNC_QUEUE)
    )
    marker = pending_marker(name)
    # Readable in the RQ dashboard, unique per job: reusing an id would overwrite the record of
    # a job that is still running.
    job_id = f"sync-model-{model_key(name)[:16]}-{uuid.uuid4().hex[:12]}"
    prefix = queue.job_class.redis_job_namespace_prefix
    if not queue.connection.eval(_CLAIM_MARKER, 1, marker, job_id, PENDING_TTL_SECONDS, prefix):
        return False
    try:
        queue.enqueue(
            sync_model,
            name,
            job_id=job_id,
            description=f"sync model {name!r}",
            # A model sync queued long ago is stale; the periodic sync has done its work since.
            ttl=PENDING_TTL_SECONDS,
            retry=retry,
        )
    except Exception:
        queue.connection.delete(marker)
        raise
    return True


def sync_model(name: str) -> str:
    """Re-reads one model from MLflow into the mirror; returns the summary line."""
    job = get_current_job()
    if job is not None:
        # First, before MLflow is read: a change made from now on must queue a new job.
        job.connection.eval(_RELEASE_MARKER, 1, pending_marker(name), job.id)
    return str(sync_registry(model=name))


def sync_incremental() -> str:
    """The periodic sync: what changed since the newest version the mirror has seen."""
    summary = str(sync_registry())
    _catch_up_evidence()
    return summary


def sync_full() -> str:
    """The nightly sync: the whole registry, with the version tags an incremental one misses."""
    summary = str(sync_registry(full=True))
    _catch_up_evidence()
    return summary


# -- evidence ----------------------------------------------------------------------------------

EVIDENCE_MARKER = PENDING_PREFIX + "evidence"


def enqueue_evidence_fetch(*, connection: Redis | None = None) -> bool:
    """Queues one fetch of every version's evidence still unread, unless one is waiting; True
    when a job was queued. Coalesced like `enqueue_model_sync`: a burst of new versions while a
    fetch waits is read by that fetch."""
    queue = (
        django_rq.get_queue(SYNC_QUEUE, connection=connection)
        if connection
        else queues.get_queue(SYNC_QUEUE)
    )
    job_id = f"evidence-{uuid.uuid4().hex[:12]}"
    prefix = queue.job_class.redis_job_namespace_prefix
    if not queue.connection.eval(
        _CLAIM_MARKER, 1, EVIDENCE_MARKER, job_id, PENDING_TTL_SECONDS, prefix
    ):
        return False
    try:
        queue.enqueue(fetch_evidence, job_id=job_id, description="read new versions' evidence")
    except Exception:
        queue.connection.delete(EVIDENCE_MARKER)
        raise
    return True


def fetch_evidence() -> str:
    """Reads the evidence of versions mirrored without it, a batch at a time."""
    from . import evidence

    job = get_current_job()
    if job is not None:
        job.connection.eval(_RELEASE_MARKER, 1, EVIDENCE_MARKER, job.id)
    stored = evidence.fetch_missing()
    if stored and evidence.waiting_count():
        enqueue_evidence_fetch(connection=job.connection if job is not None else None)
    return f"evidence read for {stored} versions"


def _catch_up_evidence() -> None:
    """Versions whose fetch was lost (Redis was down when they were mirrored) get one now; a
    count of the unread, not a read of MLflow, so a quiet registry costs one query."""
    from . import evidence

    if evidence.waiting_count():
        enqueue_evidence_fetch()
