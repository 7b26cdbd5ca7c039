"""Concurrent final approvals make one decision, one job, one MLflow transition.

20 threads, each on its own PostgreSQL connection, cast the one missing approval of a request at
the same instant, for 20 rounds (`bench/race.py` plays the same rounds 200 times). The 12-voter,
4-round race in tests/execution/test_transitions.py checks the same rule on a smaller scale.
"""

from __future__ import annotations

import pytest
from django.db import connection

from registry.jobs import SYNC_QUEUE
from reviews.execution import jobs
from tests.reliability import race

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]

ROUNDS = 20


def test_twenty_simultaneous_final_approvals_decide_once_every_round(
    mlflow_client, unique_name, rq_queue, settings
):
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = []
    queue = rq_queue(jobs.QUEUE)
    rq_queue(SYNC_QUEUE)  # where each round's follow-up sync goes
    arena = race.prepare(mlflow_client, unique_name)

    for round_number in range(ROUNDS):
        outcome = race.play_round(arena, round_number, queue)
        assert outcome.ok, outcome
