"""The one lock utility (infra/locks.py): PostgreSQL advisory locks with a bounded wait."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from infra.locks import LockTimeout, advisory_lock, is_locked
from tests.waiting import join_all

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks need PostgreSQL"),
]

SPACE = 0x5454  # "TT": no lock of the product's


def hold_in_another_session(key: int, held: threading.Event, release: threading.Event) -> None:
    try:
        with advisory_lock(SPACE, key, what="the held thing", timeout=5):
            held.set()
            release.wait(timeout=30)
    finally:
        connection.close()  # this thread's own session


def test_a_held_lock_is_waited_for_within_the_limit_then_refused_with_what_and_how_long():
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_in_another_session, args=(1, held, release))
    holder.start()
    try:
        assert held.wait(timeout=30), "the other session never took the lock"
        assert is_locked(SPACE, 1)
        with pytest.raises(LockTimeout, match=r"model #1 is locked by another process; gave up"):
            with advisory_lock(SPACE, 1, what="model #1", timeout=0.3):
                pytest.fail("entered a lock another session holds")
    finally:
        release.set()
        join_all([holder], timeout=30, message="the holder to release the lock")
    assert not is_locked(SPACE, 1)


def test_a_lock_released_by_its_holder_is_taken_by_the_waiter():
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_in_another_session, args=(2, held, release))
    holder.start()
    assert held.wait(timeout=30), "the other session never took the lock"
    threading.Timer(0.2, release.set).start()
    with advisory_lock(SPACE, 2, what="model #2", timeout=30):
        assert release.is_set(), "entered before the holder let go"
    join_all([holder], timeout=30, message="the holder to release the lock")


def test_the_lock_is_free_again_after_an_error_in_the_block():
    with pytest.raises(RuntimeError), advisory_lock(SPACE, 3, what="x", timeout=1):
        raise RuntimeError("the work failed")
    assert not is_locked(SPACE, 3)
