"""Race: 20 approvers cast the final approval of one request at the same instant, 200 times.

    .venv/bin/python bench/race.py [--rounds 200] [--racers 20]

Each round opens a request for Production with its lead sign-off in; RACERS threads, each on its
own database connection, then approve at once. A round is right when exactly one vote counts and
the others find the request closed, the request is approved once (one "request.approved" audit
event, one transition job), and the job moves the version in MLflow once. The rounds are the ones
tests/reliability/test_race.py plays 20 of (tests/reliability/race.py). Prints the tally, the
time per round, and every wrong round; exits 1 if there was one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from _common import bench_stack, database_vendor, summary_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--racers", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("QUORUM_TRANSITION_RETRY_INTERVALS", "")  # one attempt: no hiding
    with bench_stack("race") as url:
        import django_rq

        from registry.mlflow_client import RegistryClient
        from reviews.audit import verification
        from reviews.execution import jobs
        from tests.reliability import race

        queue = django_rq.get_queue(jobs.QUEUE)
        arena = race.prepare(RegistryClient(url), f"race-{int(time.time())}", racers=args.racers)
        print(f"database: {database_vendor()}; {args.racers} racers; {args.rounds} rounds")
        votes: Counter = Counter()
        wrong = []
        durations = []
        for round_number in range(args.rounds):
            started = time.perf_counter()
            outcome = race.play_round(arena, round_number, queue)
            durations.append(time.perf_counter() - started)
            votes.update(outcome.votes)
            if not outcome.ok:
                wrong.append(outcome)
        print(f"rounds right: {args.rounds - len(wrong)}/{args.rounds}")
        print(f"votes: {dict(votes)}")
        print(f"round (votes + job + checks): {summary_ms(durations)}")
        verdict = verification.verify()
        print(f"audit chain: {verdict}")
        for outcome in wrong:
            print(f"WRONG: {outcome}")
        return 1 if wrong or not verdict.ok else 0


if __name__ == "__main__":
    sys.exit(main())
