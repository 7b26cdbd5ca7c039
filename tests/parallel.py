"""Running the suite in pytest-xdist processes: each gets a Redis database of its own
(tests/conftest.py calls `use_own_redis_database()` before any test runs), and `in_lanes` orders
the tests so that the slow and end-to-end ones are dealt out evenly.

pytest-django already gives each process its own test database (`test_<name>_gw0`, ...) and every
server a test starts takes a free port; Redis is the one service the processes would share. Its
queues are named alike in every process, so process N uses the database N below the one that
`make test` chose (15, 14, 13, ... on the local Redis). Workers, web servers and the CLI that
tests start inherit it through REDIS_URL; django-rq reads the queues' settings when asked.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from typing import TypeVar

REDIS_DATABASES = 16  # Redis' default `databases`

T = TypeVar("T")


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


def in_lanes(items: list[T], heavy: Callable[[T], int], lanes: int) -> list[T]:
    """`items` reordered for `lanes` processes that each take one contiguous share of the list
    first (xdist's `worksteal` schedule) and steal from the tail of the longest share when done.

    `heavy(item)` is 2 for the tests that take minutes (run first, one per lane), 1 for the
    end-to-end ones (workers, servers, a browser: dealt out evenly and spread through each
    lane, so that few of them overlap on two cores), 0 for the rest. Every process computes
    the same order from the same collection, as xdist requires."""
    if lanes <= 1:
        return sorted(items, key=lambda item: -heavy(item))
    # The sizes of worksteal's first split: each idle process in turn takes the pending
    # tests divided by the processes still to serve.
    sizes, left = [], len(items)
    for lane in range(lanes):
        sizes.append(left // (lanes - lane))
        left -= sizes[-1]
    shares: list[list[T]] = [[] for _ in range(lanes)]
    for weight in (2, 1):
        for index, item in enumerate([item for item in items if heavy(item) == weight]):
            shares[index % lanes].append(item)
    light = iter([item for item in items if heavy(item) == 0])
    for share, size in zip(shares, sizes, strict=True):
        share.extend(itertools.islice(light, max(0, size - len(share))))
    shares[-1].extend(light)  # only when the heavy tests overfilled a share
    return [item for share in shares for item in _spread(share, heavy)]


def _spread(share: list[T], heavy: Callable[[T], int]) -> list[T]:
    """The slowest first, then the end-to-end tests at even intervals among the rest."""
    slowest = [item for item in share if heavy(item) == 2]
    middle = [item for item in share if heavy(item) == 1]
    light = [item for item in share if heavy(item) == 0]
    if not middle:
        return slowest + light
    every = max(1, len(light) // len(middle))
    spread: list[T] = []
    for index, item in enumerate(middle):
        spread.append(item)
        spread.extend(light[index * every : (index + 1) * every])
    spread.extend(light[len(middle) * every :])
    return slowest + spread
