"""The one way tests wait for something another thread or process does: poll until it holds.

Every test that waits on a worker, a server or a delivery calls `wait_for`, so a timeout always
fails the same way, saying how long it waited and for what.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], *, timeout: float, interval: float = 0.1, message: str = "condition"
) -> T:
    """Calls `predicate` every `interval` seconds until it returns something truthy, and returns
    that; after `timeout` seconds raises AssertionError naming `message` (what was awaited).

    The predicate is called at least once, and once more at the deadline, so a slow last poll
    is not lost.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def join_all(threads, *, timeout: float, message: str) -> None:
    """Joins every thread within `timeout` seconds in all; raises AssertionError naming
    `message` (what the threads were doing) when one is still running then."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [thread.name for thread in threads if thread.is_alive()]
    if alive:
        raise AssertionError(
            f"timed out after {timeout:g} s waiting for {message}: {', '.join(alive)} still running"
        )
