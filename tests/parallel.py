"""Each pytest-xdist process gets a Redis database of its own: tests/conftest.py calls
`use_own_redis_database()` before any test runs.

pytest-django already gives each process its own test database (`test_<name>_gw0`, ...) and every
server a test starts takes a free port; Redis is the one service the processes would share. Its
queues are named alike in every process, so process N uses the database N below the one that
`make test` chose (15, 14, 13, ... on the local Redis). Workers, web servers and the CLI that
tests start inherit it through REDIS_URL; django-rq reads the queues' settings when asked.
"""

from __future__ import annotations

import os
import re

REDIS_DATABASES = 16  # Redis' default `databases`


def redis_url_for_worker(url: str, worker: str) -> str:
    """The URL of `url`'s Redis with the database of xdist process `worker` ("gw3")."""
    index = int(worker.removeprefix("gw"))
    found = re.fullmatch(r"(redis[s]?://[^/?#]*)(?:/(\d*))?(\?.*)?", url)
    if found is None:
        raise ValueError(f"REDIS_URL {url!r} is not a redis:// URL with an optional database")
    base = int(found.group(2) or 0)
    database = base - index
    if database < 0:
        raise ValueError(
            f"REDIS_URL {url!r}: database {base} leaves no Redis database for test process "
            f"{worker}; use a higher database number or fewer processes (TEST_WORKERS)"
        )
    return f"{found.group(1)}/{database}{found.group(3) or ''}"


def use_own_redis_database() -> None:
    """Points REDIS_URL (the environment and the settings) and every queue at this process's
    database; nothing to do outside xdist or without REDIS_URL (the settings' default)."""
    from django.conf import settings

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or "REDIS_URL" not in os.environ:
        return
    url = redis_url_for_worker(os.environ["REDIS_URL"], worker)
    os.environ["REDIS_URL"] = settings.REDIS_URL = url
    for queue in settings.RQ_QUEUES.values():
        queue["URL"] = url
