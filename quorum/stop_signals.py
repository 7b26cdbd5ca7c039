"""Stopping the demo on Ctrl-C or SIGTERM, but never halfway through starting a process.

`on_signal` is the handler `quorum.demo` installs for STOP_SIGNALS: it raises `Stopped`, unless a
`held_signals` block is open, in which case the stop waits until the block ends.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypedDict

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Stopped(Exception):
    """Ctrl-C or SIGTERM arrived."""


class _Held(TypedDict):
    depth: int  # how many `held_signals` blocks are open
    pending: int | None  # the signal that arrived inside one


_held: _Held = {"depth": 0, "pending": None}


def on_signal(signum, frame, *, say: Callable[[str], None] = print) -> None:
    if _held["depth"]:
        _held["pending"] = signum
        say("stopping as soon as what is starting has started")
        return
    raise Stopped(signal.Signals(signum).name)


@contextmanager
def held_signals():
    """A stop requested inside waits until the block is done: a process started but not yet
    noted in `Demo.started` would otherwise be left running. (Blocking the signals instead would
    pass the blocked mask on to the children, which then ignore SIGTERM.)"""
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        pending = _held["pending"]
        if pending is not None and not _held["depth"]:
            _held["pending"] = None
            raise Stopped(signal.Signals(pending).name)
