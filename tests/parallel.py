"""A pytest plugin, loaded before Django's settings (pyproject.toml: `-p tests.parallel`), that
gives each pytest-xdist process a Redis database of its own.

pytest-django already gives each process its own test database (`test_<name>_gw0`, ...) and every
server a test starts takes a free port; Redis is the one service the processes would share. Its
queues are named alike in every process, so process N uses the database N below the one that
`make test` chose (15, 14, 13, ... on the local Redis). Workers, web servers and the CLI that
tests start inherit the setting through REDIS_URL.
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


_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and "REDIS_URL" in os.environ:
    os.environ["REDIS_URL"] = redis_url_for_worker(os.environ["REDIS_URL"], _worker)
