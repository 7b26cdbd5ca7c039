"""Running the suite in pytest-xdist processes: each gets a Redis database of its own
(tests/conftest.py calls `use_own_redis_database()` before any test runs), and `in_lanes` orders
the tests so that the slow and end-to-end ones are dealt out evenly and the tests that share a
server of their process's own run one after another.

pytest-django already gives each process its own test database (`test_<name>_gw0`, ...) and every
server a test starts takes a free port; Redis is the one service the processes would share. Its
queues are named alike in every process, so process N uses the database N below the one that
`make test` chose (15, 14, 13, ... on the local Redis). Workers, web servers and the CLI that
tests start inherit it through REDIS_URL; django-rq reads the queues' settings when asked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

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


# Fixtures of servers that a process starts once for all the tests that use them: the guarded
# MLflow servers, and the MLflow that the reliability tests may stop (about 10 s of CPU a start).
SHARED_SERVERS = ("guarded_mlflow_servers", "private_mlflow")


def shared_server(item) -> str | None:
    """What a pytest item shares with other tests and its process builds once for them: a
    fixture of SHARED_SERVERS, or a module- or package-scoped fixture (a built wheel, models
    trained and registered once for a module). `in_lanes` runs the tests that share one in one
    process, one after another; spread over processes, each would build it again."""
    for name in SHARED_SERVERS:
        if name in item.fixturenames:
            return name
    definitions = item._fixtureinfo.name2fixturedefs
    for name in item.fixturenames:
        found = definitions.get(name)
        if found and found[-1].scope in ("module", "package"):
            return f"{found[-1].baseid}::{name}"
    return None


def in_lanes(
    items: list[T],
    heavy: Callable[[T], int],
    lanes: int,
    group: Callable[[T], str | None] = lambda item: None,
) -> list[T]:
    """`items` reordered for `lanes` processes that each take one contiguous share of the list
    first (xdist's `worksteal` schedule) and steal from the tail of the longest share when done.

    `heavy(item)` is 2 for the tests that take minutes (run first, one per lane), 1 for the
    end-to-end ones (workers, servers, a browser: dealt out evenly and spread through each
    lane, so that few of them overlap on two cores), 0 for the rest. `group(item)` names the
    tests that share a server each process starts for them (None for the rest): a group stays
    together, one test after another in one lane, so that one process starts that server once
    for all of them, and weighs as its heaviest test. Every process computes the same order
    from the same collection, as xdist requires."""
    units = _units(items, heavy, group)
    if lanes <= 1:
        return _flat(sorted(units, key=lambda unit: -unit.weight))
    # The sizes of worksteal's first split: each idle process in turn takes the pending
    # tests divided by the processes still to serve.
    sizes, left = [], len(items)
    for lane in range(lanes):
        sizes.append(left // (lanes - lane))
        left -= sizes[-1]
    shares: list[list[_Unit[T]]] = [[] for _ in range(lanes)]
    dealt = [[0, 0, 0] for _ in range(lanes)]  # tests of each weight in each share
    for weight in (2, 1):
        for unit in [unit for unit in units if unit.weight == weight]:
            # The share with the fewest tests of this weight: round robin for single tests.
            lane = min(range(lanes), key=lambda lane: dealt[lane][weight])
            shares[lane].append(unit)
            for item in unit.items:
                dealt[lane][heavy(item)] += 1
    light = [unit for unit in units if unit.weight == 0]
    for lane, (share, size) in enumerate(zip(shares, sizes, strict=True)):
        room, later = size - sum(len(unit.items) for unit in share), []
        while light and room > 0:
            unit = light.pop(0)
            if len(unit.items) > room and lane < lanes - 1:
                later.append(unit)  # a group that does not fit goes whole to the next share
                continue
            share.append(unit)
            room -= len(unit.items)
        light[:0] = later
    shares[-1].extend(light)  # only when the heavy tests overfilled a share
    return [item for share in shares for item in _flat(_spread(share))]


@dataclass
class _Unit(Generic[T]):
    """One test, or a group of tests that run one after another, the slowest first."""

    items: list[T]
    weight: int


def _units(
    items: list[T], heavy: Callable[[T], int], group: Callable[[T], str | None]
) -> list[_Unit[T]]:
    units: list[_Unit[T]] = []
    groups: dict[str, _Unit[T]] = {}
    for item in items:
        name = group(item)
        if name is None:
            units.append(_Unit([item], heavy(item)))
        elif name in groups:
            groups[name].items.append(item)
        else:
            units.append(groups.setdefault(name, _Unit([item], 0)))
    for unit in groups.values():
        unit.items.sort(key=lambda item: -heavy(item))
        unit.weight = max(heavy(item) for item in unit.items)
    return units


def _flat(units: list[_Unit[T]]) -> list[T]:
    return [item for unit in units for item in unit.items]


def _spread(share: list[_Unit[T]]) -> list[_Unit[T]]:
    """The slowest first, then the end-to-end tests at even intervals among the rest."""
    slowest = [unit for unit in share if unit.weight == 2]
    middle = [unit for unit in share if unit.weight == 1]
    light = [unit for unit in share if unit.weight == 0]
    if not middle:
        return slowest + light
    every = max(1, len(light) // len(middle))
    spread: list[_Unit[T]] = []
    for index, unit in enumerate(middle):
        spread.append(unit)
        spread.extend(light[index * every : (index + 1) * every])
    spread.extend(light[len(middle) * every :])
    return slowest + spread
