"""MLflow is down when quorum is reached. A real worker process with the scheduler runs
the job and its retries at real intervals (QUORUM_TRANSITION_RETRY_INTERVALS): the request ends
`failed` with the error when MLflow stays down, and `done` when MLflow is back before the retries
run out.

tests/execution/test_transitions.py covers the admin's retry after a `failed` end, with retries
that do not wait; this module covers recovery inside the retry window, as workers run in
production, down to a real two-minute outage (marked `slow`) that ends `done` inside
QUORUM_TRANSITION_RETRY_WINDOW.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from registry.content import digest_missing
from registry.mlflow_client import RegistryClient
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.models import (
    AuditEvent,
    Execution,
    Notification,
    NotificationKind,
    TransitionRequest,
)
from tests.factories import transition_actions as attempts
from tests.mlflow_registry import register_in_mlflow
from tests.reliability.checks import audit_holds
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="worker processes share PostgreSQL"
    ),
]


@pytest.fixture
def decide(workers, private_mlflow, policies, settings):
    """`decide(intervals, window)`: MLflow stops, then the production quorum approves v2 of
    "churn" with that retry policy, and a worker with the scheduler starts; returns the
    request."""
    server = private_mlflow
    register_in_mlflow(RegistryClient(server.url), "churn", versions=2)
    sync_registry(client=RegistryClient(server.url))
    digest_missing(client=RegistryClient(server.url))  # the digest job that follows a sync

    def run(intervals: list[int], window: int = 0) -> TransitionRequest:
        settings.QUORUM_TRANSITION_RETRY_INTERVALS = intervals  # the job carries its Retry
        settings.QUORUM_TRANSITION_RETRY_WINDOW = window
        server.stop()
        request = opening.request_create(
            model="churn", version=2, target="Production", requester=policies["requester"]
        )
        for voter in ("lead", "scientist1", "scientist2"):
            voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")
        workers.start(mlflow_url=server.url, scheduler=True)
        return request

    return run


def execution_of(request) -> str:
    return TransitionRequest.objects.values_list("execution", flat=True).get(pk=request.pk)


def test_mlflow_down_for_good_fails_after_every_retry_with_the_error(decide):
    request = decide([1, 1])

    wait_for(
        lambda: execution_of(request) == Execution.FAILED,
        timeout=60,
        message="the transition to fail",
    )

    request.refresh_from_db()
    assert request.execution_attempts == 3
    assert "MLflow" in request.execution_error
    retried = ["transition.started", "transition.attempt_failed"] * 2
    assert attempts(request) == [*retried, "transition.started", "transition.failed"]
    audit_holds()


# Retries every 6 s for 90 s: MLflow's restart takes from 5 s on a quiet machine to over 30 s on
# a loaded one, and the test is about what happens when it is back before the retries run out.
RETRIES_WHILE_MLFLOW_RESTARTS = [6] * 15


def test_mlflow_back_before_the_retries_run_out_ends_done(decide, private_mlflow):
    request = decide(RETRIES_WHILE_MLFLOW_RESTARTS)
    wait_for(
        lambda: "transition.attempt_failed" in attempts(request),
        timeout=60,
        message="the first attempt to fail",
    )
    # Waiting for its retry, or already in it on a loaded machine: not failed.
    assert execution_of(request) in (Execution.QUEUED, Execution.RUNNING)

    back = private_mlflow.start()  # on its port, with its store
    wait_for(
        lambda: execution_of(request) == Execution.DONE,
        timeout=60,
        message="the transition to be done",
    )

    request.refresh_from_db()
    assert request.execution_error == ""
    assert "transition.failed" not in attempts(request)
    assert attempts(request)[-1] == "transition.done"
    assert 2 <= request.execution_attempts <= len(RETRIES_WHILE_MLFLOW_RESTARTS)
    assert RegistryClient(back.url).get_version("churn", 2).stage == "Production"
    audit_holds()


OUTAGE = 120  # seconds: a real two-minute outage, longer than the old retries lasted (50 s)


@pytest.mark.slow
@pytest.mark.timeout(OUTAGE + 300)
def test_a_two_minute_outage_at_decision_time_ends_done_without_an_admin(decide, private_mlflow):
    """MLflow goes down as quorum is reached and comes back two minutes later: the transition is
    retried with backoff inside its window (here 10 s steps, a 5-minute window, the default being
    15 minutes) and ends done; nobody is mailed and no admin retries anything."""
    went_down = time.monotonic()
    request = decide([5, 10], window=300)
    wait_for(
        lambda: "transition.attempt_failed" in attempts(request),
        timeout=60,
        message="the first attempt to fail",
    )

    time.sleep(max(0.0, OUTAGE - (time.monotonic() - went_down)))
    # Still being retried: waiting for the next attempt, or in one (an attempt against the
    # stopped server can be under way at this very moment on a loaded machine).
    assert execution_of(request) in (Execution.QUEUED, Execution.RUNNING)
    assert "transition.failed" not in attempts(request)
    back = private_mlflow.start()  # on its port, with its store
    wait_for(
        lambda: execution_of(request) == Execution.DONE,
        timeout=120,
        message="the transition to be done",
    )

    request.refresh_from_db()
    actions = attempts(request)
    assert request.execution_attempts >= 5  # retried all through the outage
    assert actions == [
        *["transition.started", "transition.attempt_failed"] * (request.execution_attempts - 1),
        "transition.started",
        "transition.done",
    ]
    assert request.execution_error == ""
    assert not AuditEvent.objects.filter(action="transition.retry").exists()  # no admin
    assert not Notification.objects.filter(kind=NotificationKind.FAILED).exists()
    assert RegistryClient(back.url).get_version("churn", 2).stage == "Production"
    wait_for(  # the follow-up sync mirrors the move, credited to the request
        lambda: request.caused_changes.filter(new="Production").exists(),
        timeout=60,
        message="the move to be mirrored",
    )
    audit_holds()
