"""`tests.waiting.wait_for`, which every test that waits on another thread or process uses."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.waiting import wait_for


def test_returns_the_first_truthy_value_the_predicate_gives():
    answers = iter([None, 0, [], "ready"])
    assert wait_for(lambda: next(answers), timeout=5, interval=0.01) == "ready"


def test_times_out_naming_what_it_waited_for_after_polling_until_the_deadline():
    polls = itertools.count(1)
    started = time.monotonic()

    with pytest.raises(AssertionError, match=r"timed out after 0\.3 s waiting for the worker"):
        wait_for(lambda: next(polls) and False, timeout=0.3, interval=0.05, message="the worker")

    assert 0.3 <= time.monotonic() - started < 2
    assert next(polls) > 3  # it kept polling, once more at the deadline


def test_a_condition_already_true_is_returned_without_waiting():
    started = time.monotonic()
    assert wait_for(lambda: 42, timeout=10, interval=5) == 42
    assert time.monotonic() - started < 1
