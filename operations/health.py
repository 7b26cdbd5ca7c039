"""/healthz and /readyz: whether this process is alive, and whether Quorum can do its work.

`/healthz` checks nothing outside the process: a liveness probe that failed because the database
was down would have every web process restarted, which cures nothing. `/readyz` checks the
database, Redis, MLflow and the workers (each of Quorum's queues has a worker whose heartbeat is
within QUORUM_WORKER_HEARTBEAT_WINDOW); `?check=database,redis` asks for some of them only.

Both answer without authentication, so the answer names the parts and what went wrong in words
of our own, never an exception's text: that may hold an address, and an address may hold a
password (redis://:password@host). The log gets the whole error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from registry.mlflow_client import MlflowError, RegistryClient

from .queue_state import PROBE_TIMEOUT, live_workers, redis_of

logger = logging.getLogger(__name__)


class NotReady(Exception):
    """A check's failure, in words safe to show anyone."""


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        raise NotReady(f"the database did not answer ({type(error).__name__})") from error
    return {}


def _queue_redis():
    return redis_of(settings.QUORUM_QUEUES[0])


def check_redis() -> dict:
    try:
        _queue_redis().ping()
    except (redis.RedisError, OSError) as error:
        raise NotReady(f"Redis did not answer ({type(error).__name__})") from error
    return {}


def check_workers() -> dict:
    try:
        workers = live_workers(_queue_redis(), timezone.now())
    except (redis.RedisError, OSError) as error:
        raise NotReady(
            f"the workers could not be listed: Redis did not answer ({type(error).__name__})"
        ) from error
    served = {name for worker in workers for name in worker.queue_names()}
    missing = [name for name in settings.QUORUM_QUEUES if name not in served]
    if missing:
        raise NotReady(
            f"no worker has sent a heartbeat within {settings.QUORUM_WORKER_HEARTBEAT_WINDOW} s "
            f"on the queue{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )
    return {"live": len(workers)}


def check_mlflow() -> dict:
    try:
        RegistryClient().answers_within(PROBE_TIMEOUT)
    except MlflowError as error:
        reason = "did not answer" if error.unreachable else "refused or failed a registry read"
        raise NotReady(f"MLflow {reason}") from error
    return {}


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "redis": check_redis,
    "mlflow": check_mlflow,
    "workers": check_workers,
}


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, dict]

    def as_json(self) -> dict:
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


def readiness(names: list[str]) -> Readiness:
    """Runs the named checks (each bounded by its client's timeout) and says how each went."""
    results: dict[str, dict] = {}
    for name in names:
        started = time.monotonic()
        try:
            result = {"ok": True, **CHECKS[name]()}
        except NotReady as refusal:
            logger.warning("readiness: %s: %s", refusal, refusal.__cause__)
            result = {"ok": False, "error": str(refusal)}
        result["seconds"] = round(time.monotonic() - started, 3)
        results[name] = result
    return Readiness(ready=all(r["ok"] for r in results.values()), checks=results)
