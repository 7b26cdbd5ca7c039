"""Break glass through a real MLflow and a real worker (reviews/emergency/break_glass.py): the move
made at once, the required groups mailed, the ratification opened; ratified it stays, rejected or
unratified in time staff are alerted and, with `revert`, the previous holder comes back. Refusals
change nothing: a non-member, no reason, one's own open request, the per-user limit. And the API."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from registry.models import RegisteredModel
from reviews.api.auth import token_create
from reviews.decisions import deciding, opening, voting
from reviews.emergency.break_glass import break_glass_move
from reviews.errors import BreakGlassLimit, CommentRequired, NotAllowed, SelfApprovalNotAllowed
from reviews.insight.holder_history import holder_history
from reviews.models import (
    AuditEvent,
    Decision,
    Execution,
    Notification,
    NotificationKind,
    RequestKind,
    TransitionRequest,
)
from tests.factories import approve_all
from tests.waiting import join_all

pytestmark = pytest.mark.django_db


def moved_and_done(model, outsider, transitions, syncs, simple_worker, capture):
    with capture(execute=True):
        move = break_glass_move(
            model=model, version=3, target="Production", user=outsider, reason="v1 leaks PII"
        )
    simple_worker(transitions, syncs)
    move.refresh_from_db()
    return move


def test_break_glass_moves_at_once_notifies_and_opens_the_ratification(
    glass, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass()
    move = moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )

    assert (move.kind, move.decision, move.execution) == (
        RequestKind.BREAK_GLASS,
        Decision.APPROVED,
        Execution.DONE,
    )
    assert mlflow_client.get_version(model, 3).stage == "Production"
    assert mlflow_client.get_version(model, 1).stage == "Archived"
    told = Notification.objects.filter(kind=NotificationKind.BREAK_GLASS)
    assert sorted(told.values_list("recipient__username", flat=True)) == [
        "lead",
        "scientist1",
        "scientist2",
        "scientist3",
    ]
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    assert ratification.ratifies_id == move.pk and ratification.decision == Decision.PENDING
    assert ratification.expires_at == move.created_at + timedelta(hours=1)
    assert ratification.policy_snapshot["require"][0] == {"group": "ml-leads", "approvals": 1}
    used = AuditEvent.objects.get(action="break_glass.used")
    assert used.details["reason"] == "v1 leaks PII" and used.actor == "outsider"
    latest = holder_history(RegisteredModel.objects.get(name=model)).of("Production")[-1]
    assert (latest.holding.version, latest.began.kind) == (3, "break_glass")


def test_a_ratified_move_stays(
    glass, outsider, lead, scientist1, scientist2, mlflow_client, transitions, syncs,
    simple_worker, django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass()
    moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    approve_all(
        ratification, lead, scientist1, scientist2, capture=django_capture_on_commit_callbacks
    )
    simple_worker(transitions, syncs)

    ratification.refresh_from_db()
    assert (ratification.decision, ratification.execution) == (Decision.APPROVED, Execution.DONE)
    assert mlflow_client.get_version(model, 3).stage == "Production"
    assert not AuditEvent.objects.filter(action="break_glass.unratified").exists()


def test_a_rejected_ratification_alerts_staff_and_reverts(
    glass, outsider, scientist1, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass("revert")
    move = moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    with django_capture_on_commit_callbacks(execute=True):
        voting.vote_cast(
            request_id=ratification.pk, user=scientist1, decision="reject", comment="no incident"
        )
    simple_worker(transitions, syncs)

    assert mlflow_client.get_version(model, 1).stage == "Production"
    assert mlflow_client.get_version(model, 3).stage == "Archived"
    revert = TransitionRequest.objects.get(kind=RequestKind.ROLLBACK, undoes=move)
    assert (revert.version.version, revert.execution) == (1, Execution.DONE)
    unratified = AuditEvent.objects.get(action="break_glass.unratified")
    assert unratified.details["reverted_to"] == 1 and unratified.details["decision"] == "rejected"
    staff = Notification.objects.filter(kind=NotificationKind.UNRATIFIED)
    assert list(staff.values_list("recipient__username", flat=True)) == ["admin"]


def test_unratified_in_time_alerts_and_alert_alone_does_not_revert(
    glass, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass("alert")
    moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)

    assert (
        deciding.requests_expire_overdue(now=ratification.expires_at - timedelta(seconds=1)) == []
    )
    with django_capture_on_commit_callbacks(execute=True):
        expired = deciding.requests_expire_overdue(
            now=ratification.expires_at + timedelta(seconds=1)
        )
    simple_worker(transitions, syncs)

    assert expired == [ratification.pk]
    unratified = AuditEvent.objects.get(action="break_glass.unratified")
    assert unratified.details["decision"] == "expired" and unratified.details["reverted_to"] is None
    assert Notification.objects.filter(kind=NotificationKind.UNRATIFIED).exists()
    assert mlflow_client.get_version(model, 3).stage == "Production"
    assert not TransitionRequest.objects.filter(kind=RequestKind.ROLLBACK).exists()


def test_unratified_in_time_with_revert_puts_the_previous_holder_back(
    glass, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    model = glass("revert")
    moved_and_done(
        model, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    ratification = TransitionRequest.objects.get(kind=RequestKind.RATIFICATION)
    with django_capture_on_commit_callbacks(execute=True):
        deciding.requests_expire_overdue(now=ratification.expires_at + timedelta(seconds=1))
    simple_worker(transitions, syncs)
    assert mlflow_client.get_version(model, 1).stage == "Production"


def test_refusals_change_nothing(glass, outsider, requester, settings):
    model = glass()
    with pytest.raises(NotAllowed, match="Only members of oncall"):
        break_glass_move(model=model, version=3, target="Production", user=requester, reason="x")
    with pytest.raises(CommentRequired):
        break_glass_move(model=model, version=3, target="Production", user=outsider, reason=" ")
    with pytest.raises(NotAllowed, match="does not allow breaking glass"):
        break_glass_move(model=model, version=3, target="Staging", user=outsider, reason="x")
    own = opening.request_create(model=model, version=2, target="Production", requester=outsider)
    with pytest.raises(SelfApprovalNotAllowed, match=f"You requested #{own.pk} yourself"):
        break_glass_move(model=model, version=2, target="Production", user=outsider, reason="x")
    assert TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS).count() == 0

    settings.QUORUM_BREAK_GLASS_PER_DAY = 1
    break_glass_move(model=model, version=3, target="Production", user=outsider, reason="first")
    with pytest.raises(BreakGlassLimit, match="QUORUM_BREAK_GLASS_PER_DAY=1"):
        break_glass_move(model=model, version=1, target="@champion", user=outsider, reason="2nd")
    assert TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_the_per_person_limit_holds_for_moves_made_at_the_same_instant(
    glass, outsider, settings, transitions, syncs
):
    """Two moves by one person at one instant, each on its own connection: with a limit of one,
    one moves and the other is refused, where both used to count zero before either committed."""
    settings.QUORUM_BREAK_GLASS_PER_DAY = 1
    model = glass()
    moves = [(3, "Production"), (2, "@champion")]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(moves), timeout=60)

    def move(version: int, target: str) -> None:
        try:
            barrier.wait()
            break_glass_move(
                model=model, version=version, target=target, user=outsider, reason="same instant"
            )
            outcomes.append("moved")
        except Exception as error:  # noqa: BLE001 - the test asserts on every outcome
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=pair) for pair in moves]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=120, message="two break-glass moves at the same instant")

    assert sorted(outcomes) == ["BreakGlassLimit", "moved"], outcomes
    assert TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS).count() == 1


def test_api_breaks_glass_and_answers_refusals_with_their_status(glass, outsider, lead, client):
    model = glass()

    def post(user, **body):
        headers = {"Authorization": f"Bearer {token_create(user=user, name='t')[1]}"}
        return client.post(
            "/api/v1/break-glass", body, content_type="application/json", headers=headers
        )

    refused = post(lead, model=model, version=3, target="Production", reason="x")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    no_reason = post(outsider, model=model, version=3, target="Production", reason="")
    assert no_reason.status_code == 400 and no_reason.json()["error"] == "comment_required"
    missing = post(outsider, model=model, version=3, target="Production")
    assert missing.status_code == 400
    made = post(outsider, model=model, version=3, target="Production", reason="outage")
    assert made.status_code == 201, made.content
    assert (made.json()["kind"], made.json()["decision"]) == ("break_glass", "approved")
