"""Quorum's RQ queues as /metrics and /readyz see them: how many jobs wait, for how long the
oldest has, how many failed, and which workers are alive.

A worker is alive while its last heartbeat is within QUORUM_WORKER_HEARTBEAT_WINDOW. An idle RQ
worker beats once per `worker_ttl - 15` seconds (405 s with RQ's default TTL of 420 s) and RQ lets
its record expire 60 s after the TTL, so the default window, 480 s, is RQ's own notion of alive.
Probes must answer within a probe's timeout: the Redis client here gives up after
PROBE_TIMEOUT seconds, unlike the queues' own, which wait as long as a job takes to queue.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from redis import Redis
from rq.job import Job
from rq.utils import utcparse
from rq.worker import BaseWorker, Worker

PROBE_TIMEOUT = 2.0


@functools.cache
def probe_client(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT)


@dataclass(frozen=True)
class QueueState:
    name: str
    depth: int  # jobs waiting
    oldest_age: float | None  # seconds the first waiting job has waited; None when none waits
    failed: int  # jobs in the failed job registry
    workers: int  # live workers listening on it


def redis_of(queue_name: str) -> Redis:
    return probe_client(settings.RQ_QUEUES[queue_name]["URL"])


def live_workers(connection: Redis, now: datetime) -> list[BaseWorker]:
    """The workers whose last heartbeat is within the window."""
    window = settings.QUORUM_WORKER_HEARTBEAT_WINDOW
    return [
        worker
        for worker in Worker.all(connection=connection)
        if worker.last_heartbeat is not None
        and (now - worker.last_heartbeat).total_seconds() <= window
    ]


def queue_states(now: datetime) -> list[QueueState]:
    """Every one of Quorum's queues; raises redis.RedisError (or OSError) when Redis is down.

    Three round trips per Redis, whatever the queues hold: the lengths and heads in one pipeline,
    the heads' ages in another, and the workers."""
    from rq import Queue

    states = []
    names = list(settings.QUORUM_QUEUES)
    connection = redis_of(names[0])
    queues = [Queue(name, connection=connection) for name in names]
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue.key)
            pipe.lindex(queue.key, 0)
            pipe.zcard(queue.failed_job_registry.key)
        answers = pipe.execute()
    heads = answers[1::3]
    with connection.pipeline(transaction=False) as pipe:
        for head in heads:
            pipe.hget(Job.key_for(head.decode()) if head else b"-", "enqueued_at")
        enqueued = pipe.execute()
    listening: dict[str, int] = {}
    for worker in live_workers(connection, now):
        for name in worker.queue_names():
            listening[name] = listening.get(name, 0) + 1
    for index, queue in enumerate(queues):
        depth, failed, when = answers[3 * index], answers[3 * index + 2], enqueued[index]
        age = None
        if depth and when:
            age = max(0.0, (now - utcparse(when.decode())).total_seconds())
        states.append(
            QueueState(
                name=queue.name,
                depth=depth,
                oldest_age=age,
                failed=failed,
                workers=listening.get(queue.name, 0),
            )
        )
    return states
