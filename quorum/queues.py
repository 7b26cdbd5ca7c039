"""Quorum's RQ queues, over one Redis client per Redis URL and process.

django-rq builds a new Redis client, and so opens a new connection, on every `get_queue`: about a
millisecond of CPU and a handful of round trips for each job queued, and every approval queues
one. `get_queue` here reuses one client per URL (settings.RQ_QUEUES names them); redis-py's
connection pool is thread-safe and starts afresh in a forked child.
"""

from __future__ import annotations

import functools

import django_rq
from django.conf import settings
from redis import Redis
from rq import Queue


def get_queue(name: str) -> Queue:
    return django_rq.get_queue(name, connection=redis_for(settings.RQ_QUEUES[name]["URL"]))


@functools.cache
def redis_for(url: str) -> Redis:
    return Redis.from_url(url)
