"""Quorum's RQ queues, over one Redis client per Redis URL and process.

django-rq builds a new Redis client, and so opens a new connection, on every `get_queue`: about a
millisecond of CPU and a handful of round trips for each job queued, and every approval queues
one. `get_queue` here reuses one client per URL (settings.RQ_QUEUES names them); redis-py's
connection pool is thread-safe and starts afresh in a forked child.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import django_rq
import redis
import structlog
from django.conf import settings
from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

logger = logging.getLogger(__name__)

# Job states, once for every job of Quorum's. A job in a live state will run or is running; one
# in an ended state never runs again (its record may be dropped and the job queued anew); a
# failed one ended without doing its work.
LIVE_JOB_STATES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
ENDED_JOB_STATES = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
FAILED_JOB_STATES = ENDED_JOB_STATES - {JobStatus.FINISHED}


# The keys of the log context (structlog's context variables) that a job takes along from the
# code that queued it, in its meta: a web request's id reaches the lines its jobs log
# (operations/logs.py binds them again in the worker).
CARRIED_LOG_CONTEXT = ("request_id",)


def carried_log_context() -> dict[str, Any]:
    context = structlog.contextvars.get_contextvars()
    return {key: context[key] for key in CARRIED_LOG_CONTEXT if key in context}


class HasIdAndCreation(Protocol):
    pk: Any
    created_at: datetime


def job_id_for(kind: str, row: HasIdAndCreation) -> str:
    """The one job id of `kind` ("transition", "attestation", "revert") a row ever has.

    The creation time is part of it: a finished job's record outlives it in Redis, and after a
    database restore (or with two Quorum databases on one Redis) an id alone would name an old
    job, and `unique` would silently refuse the new one.
    """
    return f"{kind}-{row.pk}-{int(row.created_at.timestamp() * 1_000_000)}"


def get_queue(name: str) -> Queue:
    return django_rq.get_queue(name, connection=redis_for(settings.RQ_QUEUES[name]["URL"]))


@functools.cache
def redis_for(url: str) -> Redis:
    return Redis.from_url(url)


def enqueue_once(
    queue_name: str,
    func: Callable[..., Any] | str,
    *args: Any,
    job_id: str,
    what: str,
    replace: bool = False,
    retried_by: str = "the reconciler",
    **options: Any,
) -> bool:
    """Queues `func(*args)` (a function, or its dotted path) as job `job_id` unless a job of
    that id is waiting or running (`unique`); True when this call queued it.

    `replace` first drops a record of the job that ended (finished, failed, stopped), which would
    otherwise make `unique` refuse it: an admin's retry, or a reconciler re-queueing a lost job.
    Never raises for Redis trouble, only logs it: what calls this keeps its state in the database,
    and `retried_by` (the reconciler, the outbox's sweep, the periodic sync) queues what is still
    waiting when Redis answers again.
    """
    try:
        queue = get_queue(queue_name)
        if replace:
            _drop_ended_job(job_id, queue.connection)
        meta = {**carried_log_context(), **options.pop("meta", {})}
        queue.enqueue(func, *args, job_id=job_id, unique=True, meta=meta, **options)  # type: ignore[type-var]
    except DuplicateJobError:
        return False
    except (redis.RedisError, OSError) as error:
        logger.warning("could not queue %s (%s); %s will", what, error, retried_by)
        return False
    return True


def _drop_ended_job(job_id: str, connection: Redis) -> None:
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return
    if job.get_status(refresh=False) in ENDED_JOB_STATES:
        job.delete()
