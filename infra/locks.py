"""The one lock utility: PostgreSQL advisory locks, waited for within a limit.

A lock names what it protects (`what`, used in the error) and how long a caller may wait for
it. Past the limit `LockTimeout` says what was waited for and for how long, so a job that cannot
get its lock fails visibly (and is retried by its own retry policy) instead of hanging until the
queue's job timeout kills it without a word.

Advisory locks belong to the database session: a killed worker's connection closes and
PostgreSQL releases its locks at once.

On SQLite (the demo and embedded use: one machine) there are no advisory locks and these locks
do nothing: SQLite lets one writing transaction run at a time for the whole database, which
serialises the state changes themselves but not work done outside a transaction (such as a call
to MLflow). Run more than one worker only on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

# The first retry comes soon (most holders finish quickly), later ones less often.
FIRST_RETRY_SECONDS = 0.05
LONGEST_RETRY_SECONDS = 1.0


class LockTimeout(Exception):
    """A lock was not free within the caller's limit."""

    def __init__(self, what: str, waited: float):
        super().__init__(f"{what} is locked by another process; gave up after {waited:.1f} s")
        self.what = what
        self.waited = waited


def supported() -> bool:
    """Whether the database has advisory locks (PostgreSQL)."""
    return connection.vendor == "postgresql"


@contextlib.contextmanager
def advisory_lock(space: int, key: int, *, what: str, timeout: float) -> Iterator[None]:
    """Holds PostgreSQL's session-level advisory lock (`space`, `key`) for the block, waiting at
    most `timeout` seconds for it (`LockTimeout` after that). Nothing on SQLite (module docs)."""
    if not supported():
        yield
        return
    started = time.monotonic()
    delay = FIRST_RETRY_SECONDS
    while not _try_lock(space, key):
        waited = time.monotonic() - started
        if waited >= timeout:
            raise LockTimeout(what, waited)
        time.sleep(min(delay, timeout - waited))
        delay = min(delay * 2, LONGEST_RETRY_SECONDS)
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [space, key])
        except DatabaseError:  # the session is gone, and its lock with it
            logger.warning("%s: lock released with its session", what)


def is_locked(space: int, key: int) -> bool:
    """Whether a live database session holds the lock (`space`, `key`) now. False on SQLite."""
    if not supported():
        return False
    if not _try_lock(space, key):
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [space, key])
    return False


def _try_lock(space: int, key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [space, key])
        return bool(cursor.fetchone()[0])
