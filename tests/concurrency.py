"""Votes cast at the same instant from many threads, each on its own database connection: how
the race tests (tests/execution/test_transitions.py, tests/reliability/race.py) make them."""

from __future__ import annotations

import threading

from django.contrib.auth.models import User
from django.db import connection

from reviews.decisions import voting
from tests.waiting import join_all


def approve_at_once(request_id: int, voters: list[User]) -> list[str]:
    """Every voter approves at the same instant, each on its own connection; what each got."""
    outcomes: list[str] = []
    barrier = threading.Barrier(len(voters), timeout=60)

    def vote(user: User) -> None:
        try:
            barrier.wait()
            voting.vote_cast(request_id=request_id, user=user, decision="approve")
            outcomes.append("counted")
        except Exception as error:  # noqa: BLE001 - the caller asserts on every outcome
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=vote, args=(user,)) for user in voters]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=120, message=f"{len(voters)} simultaneous votes")
    return outcomes
