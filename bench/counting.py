"""Counting: what it costs to count each approver once, for one required group.

    .venv/bin/python bench/counting.py [--repeat 2000]

Every vote re-counts the request's current approvals under the request's row lock
(`reviews.decisions.counting.tally`): a maximum assignment of voters to required groups. This times
it in-process, with the votes already loaded (as `vote_cast` has them), against the counting it
replaced (a vote counted for every required group its voter was in), for policies from the usual to
the contrived: the production policy's 3 votes, 20 votes on 2 groups, and 60 voters each in all of 6
groups that need 5 approvals each (the slowest shape for the matching: every group full, every later
voter searching through all of them). Prints microseconds per count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def shapes():
    """(name, requirements, [(username, groups)]) from the usual to the contrived."""
    six = [f"group-{n}" for n in range(6)]
    return [
        (
            "1 ml-leads + 2 data-science, 3 votes",
            [("ml-leads", 1), ("data-science", 2)],
            [("lead", ["ml-leads"]), ("ana", ["data-science"]), ("bo", ["data-science"])],
        ),
        (
            "1 + 2, 20 votes, half in both groups",
            [("ml-leads", 1), ("data-science", 2)],
            [
                (f"user{n}", ["ml-leads", "data-science"] if n % 2 else ["data-science"])
                for n in range(20)
            ],
        ),
        (
            "6 groups x 5, 60 voters in all 6",
            [(group, 5) for group in six],
            [(f"user{n}", list(six)) for n in range(60)],
        ),
    ]


def old_progress(request, votes):
    """The counting before: a vote counted for every required group its voter was in."""
    from reviews.models import VoteChoice

    approving = [v for v in votes if v.decision == VoteChoice.APPROVE and not v.stale]
    return [
        (
            r["group"],
            r["approvals"],
            [v.user.get_username() for v in approving if r["group"] in v.groups],
        )
        for r in request.policy_snapshot.get("require", [])
    ]


def microseconds(function, request, votes, repeat: int) -> float:
    """`function(request, votes)`: the median of 5 batches of `repeat` calls, per call."""
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            function(request, votes)
        batches.append((time.perf_counter() - started) / repeat)
    return statistics.median(batches) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quorum.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User

    from reviews.decisions import counting
    from reviews.models import TransitionRequest, Vote

    start = datetime(2026, 1, 1, tzinfo=UTC)
    print(f"{'policy and votes':40} {'before':>10} {'now':>10}")
    for name, needs, voters in shapes():
        request = TransitionRequest(
            policy_snapshot={"require": [{"group": g, "approvals": n} for g, n in needs]}
        )
        votes = [
            Vote(
                pk=i + 1,
                user=User(username=username),
                decision="approve",
                groups=groups,
                created_at=start + timedelta(seconds=i),
            )
            for i, (username, groups) in enumerate(voters)
        ]
        before = microseconds(old_progress, request, votes, args.repeat)
        now = microseconds(counting.tally, request, votes, args.repeat)
        print(f"{name:40} {before:8.1f} µs {now:8.1f} µs")


if __name__ == "__main__":
    main()
