"""The registry's background jobs, run by RQ workers on the `sync` queue.

Jobs take plain arguments (model names), never objects: they are pickled into Redis and may run
long after, in another process.

- `sync_incremental` and `sync_full` are the periodic syncs (`quorum/cron.py` schedules them).
- `sync_model` re-reads one model; the MLflow webhook receiver and the transition job queue it
  through `enqueue_model_sync`, which keeps at most one *queued* sync per model: a burst of webhooks
  while a job waits collapses into that job, and a change that arrives while a job runs gets a
  new one (the job drops its pending marker before it reads MLflow, so it cannot miss the change).
- `fetch_evidence` and `digest_content` read what a sync leaves for later (a version's evidence
  packet, the digest of its model files), each queued the same coalesced way after a sync that
  mirrored new versions, and by the periodic syncs for whatever was missed.

Coalescing uses a marker in Redis rather than `infra.queues.enqueue_once`: a job id that is
unique while its job runs would refuse the job a version mirrored during the run needs.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import django_rq
from django.db import transaction
from redis import Redis
from rq import Retry, get_current_job
from structlog.contextvars import bound_contextvars

from infra import queues

from .models import ChangeKind, RegistryChange
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


def _enqueue_coalesced(
    marker: str,
    func,
    *,
    job_prefix: str,
    description: str,
    connection: Redis | None = None,
    **options,
) -> bool:
    """Queues `func` unless a job of it is already waiting (its `marker` names a job that still
    exists); True when a job was queued. A burst of new versions while one waits is read by that
    one; the job drops the marker when it starts (`_release`), so versions mirrored while it runs
    get a job of their own. Raises `redis.RedisError` when Redis cannot be reached."""
    queue = (
        django_rq.get_queue(SYNC_QUEUE, connection=connection)
        if connection
        else queues.get_queue(SYNC_QUEUE)
    )
    job_id = f"{job_prefix}-{uuid.uuid4().hex[:12]}"
    prefix = queue.job_class.redis_job_namespace_prefix
    if not queue.connection.eval(_CLAIM_MARKER, 1, marker, job_id, PENDING_TTL_SECONDS, prefix):
        return False
    try:
        queue.enqueue(func, job_id=job_id, description=description, **options)
    except Exception:
        queue.connection.delete(marker)
        raise
    return True


def _release(marker: str):
    """At a coalesced job's start: drops its marker, and returns its Redis connection (None when
    run outside a worker) for queueing its successor."""
    job = get_current_job()
    if job is None:
        return None
    job.connection.eval(_RELEASE_MARKER, 1, marker, job.id)
    return job.connection


def enqueue_model_sync(
    name: str, *, retry: Retry | None = None, connection: Redis | None = None
) -> bool:
    """Queues a sync of one model unless one is already waiting; True when a job was queued.

    `retry` retries a failed sync (the transition job's follow-up sync has one; a webhook's sync
    has the periodic sync behind it). `connection`: a Redis connection to reuse (a job's own),
    rather than a new one. Raises `redis.RedisError` when Redis cannot be reached; nothing is
    queued then.
    """
    return _enqueue_coalesced(
        pending_marker(name),
        sync_model,
        # Readable in the RQ dashboard, unique per job: reusing an id would overwrite the record
        # of a job that is still running.
        job_prefix=f"sync-model-{model_key(name)[:16]}",
        description=f"sync model {name!r}",
        connection=connection,
        args=(name,),
        # A model sync queued long ago is stale; the periodic sync has done its work since.
        ttl=PENDING_TTL_SECONDS,
        retry=retry,
    )


def sync_model(name: str) -> str:
    """Re-reads one model from MLflow into the mirror; returns the summary line."""
    # First, before MLflow is read: a change made from now on must queue a new job.
    _release(pending_marker(name))
    with bound_contextvars(model=name):  # on every line it logs (operations/logs.py)
        return str(sync_registry(model=name))


def sync_incremental() -> str:
    """The periodic sync: what changed since the newest version the mirror has seen."""
    summary = str(sync_registry())
    _catch_up_evidence()
    _catch_up_content()
    return summary


def sync_full() -> str:
    """The nightly sync: the whole registry, with the version tags an incremental one misses."""
    summary = str(sync_registry(full=True))
    _catch_up_evidence()
    _catch_up_content(retry_unknown=True)
    return summary


# -- work a sync leaves for later: evidence and content digests ---------------------------------


def on_new_versions(sender, changes: list[RegistryChange], **kwargs) -> None:
    """A sync mirrored new versions: queue the reading of their evidence and of their content
    digest after it commits (`changes_observed` receiver)."""
    if any(c.kind == ChangeKind.VERSION_CREATED for c in changes):
        transaction.on_commit(_queue_follow_ups)


def _queue_follow_ups() -> None:
    # Redis down must not fail the sync; the periodic sync queues what is still waiting.
    for enqueue in (enqueue_evidence_fetch, enqueue_content_digest):
        try:
            enqueue()
        except Exception:
            logger.warning("could not queue %s", enqueue.__name__, exc_info=True)


EVIDENCE_MARKER = PENDING_PREFIX + "evidence"
CONTENT_MARKER = PENDING_PREFIX + "content"
# One digest job reads for QUORUM_CONTENT_BATCH_SECONDS and then queues its successor; a single
# large model may still take long, so its job may outlast the queue's default timeout.
CONTENT_JOB_TIMEOUT = 3600


def enqueue_evidence_fetch(*, connection: Redis | None = None) -> bool:
    """Queues one fetch of every version's evidence still unread, unless one is waiting; True
    when a job was queued."""
    return _enqueue_coalesced(
        EVIDENCE_MARKER,
        fetch_evidence,
        job_prefix="evidence",
        description="read new versions' evidence",
        connection=connection,
    )


def fetch_evidence() -> str:
    """Reads the evidence of versions mirrored without it, a batch at a time."""
    from . import evidence

    connection = _release(EVIDENCE_MARKER)
    stored = evidence.fetch_missing()
    if stored and evidence.waiting_count():
        enqueue_evidence_fetch(connection=connection)
    return f"evidence read for {stored} versions"


def enqueue_content_digest(*, retry_unknown: bool = False, connection: Redis | None = None) -> bool:
    """Queues one job digesting the content of every version waiting for it (`registry.content`),
    unless one is waiting; True when a job was queued."""
    return _enqueue_coalesced(
        CONTENT_MARKER,
        digest_content,
        job_prefix="content",
        description="digest new versions' model files",
        connection=connection,
        kwargs={"retry_unknown": retry_unknown},
        job_timeout=CONTENT_JOB_TIMEOUT,
    )


def digest_content(*, retry_unknown: bool = False) -> str:
    """Digests the model files of versions waiting for it, for a while, then hands over."""
    from . import content

    connection = _release(CONTENT_MARKER)
    stored = content.digest_missing(retry_unknown=retry_unknown)
    if stored and content.waiting(retry_unknown=retry_unknown).exists():
        enqueue_content_digest(retry_unknown=retry_unknown, connection=connection)
    return f"content digested for {stored} versions"


def _catch_up_evidence() -> None:
    """Versions whose fetch was lost (Redis was down when they were mirrored) get one now; a
    count of the unread, not a read of MLflow, so a quiet registry costs one query."""
    from . import evidence

    if evidence.waiting_count():
        enqueue_evidence_fetch()


def _catch_up_content(*, retry_unknown: bool = False) -> None:
    """The same for content digests; the nightly sync also retries the versions whose files could
    not be read (a store that was down, credentials since fixed)."""
    from . import content

    if content.waiting(retry_unknown=retry_unknown).exists():
        enqueue_content_digest(retry_unknown=retry_unknown)
