"""Ratifying a break-glass move, through a real MLflow and a real worker: only staff cancel a
ratification, and any end but approval (rejected, expired, cancelled) leaves the move unratified
exactly once, ends racing on PostgreSQL included; a ratification that cannot pass without the
person who broke glass is said on the form and mailed to staff at once; the move skips every
gate, metric and evidence, and the ratification shows them skipped."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse

from registry import evidence as registry_evidence
from registry.models import ModelVersion, VersionEvidence
from reviews.decisions import deciding, voting
from reviews.emergency.break_glass import break_glass_move
from reviews.errors import NotAllowed
from reviews.models import (
    AuditEvent,
    Decision,
    Notification,
    NotificationKind,
    RequestKind,
    TransitionRequest,
)
from reviews.policies.loading import policies_load
from tests.policy_files import policies_with
from tests.waiting import join_all

SIGNATURE = {
    "inputs": [
        {"name": "age", "type": "long", "required": True, "shape": None},
        {"name": "income", "type": "long", "required": True, "shape": None},
    ],
    "outputs": [],
    "params": [],
}


def store_evidence(version: ModelVersion, signature: dict) -> None:
    """`version`'s evidence packet as the worker stores it, with `signature`."""
    fields = {
        "signature": signature,
        "python_version": "3.11.7",
        "requirements": ["mlflow==3.17.2"],
        "flavors": ["python_function"],
        "size_bytes": 2000,
        "datasets": [],
        "dataset_metrics": {},
        "problems": {},
    }
    VersionEvidence.objects.update_or_create(
        version=version,
        defaults={"status": "read", "digest": registry_evidence.digest_of(fields), **fields},
    )


@pytest.fixture
def glass_on(glass):
    """The shared `glass`, called at once: the production policy lets `outsider` (oncall) break
    glass, an unratified move is reverted, everyone has an address; returns the model's name."""
    return glass("revert")


def break_and_move(model, user, transitions, syncs, simple_worker, capture=None, version=3):
    if capture is None:
        move = break_glass_move(
            model=model, version=version, target="Production", user=user, reason="INC-7"
        )
    else:
        with capture(execute=True):
            move = break_glass_move(
                model=model, version=version, target="Production", user=user, reason="INC-7"
            )
    simple_worker(transitions, syncs)
    return TransitionRequest.objects.get(kind=RequestKind.RATIFICATION, ratifies=move)


@pytest.mark.django_db
def test_only_staff_cancel_a_ratification_and_cancelled_it_is_unratified(
    glass_on, outsider, admin_user, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """Scenario 2: whoever broke glass cannot cancel her own ratification; staff can, and a
    cancelled ratification reverts the move, audits it and mails staff."""
    ratification = break_and_move(
        glass_on, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    with pytest.raises(NotAllowed, match="Only an admin can cancel a ratification"):
        deciding.request_cancel(request_id=ratification.pk, user=outsider)
    ratification.refresh_from_db()
    assert ratification.decision == Decision.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        deciding.request_cancel(request_id=ratification.pk, user=admin_user, reason="wrong move")
    simple_worker(transitions, syncs)

    unratified = AuditEvent.objects.get(action="break_glass.unratified")
    assert unratified.details["decision"] == "cancelled" and unratified.details["reverted_to"] == 1
    assert mlflow_client.get_version(glass_on, 1).stage == "Production"
    staff = Notification.objects.filter(kind=NotificationKind.UNRATIFIED)
    assert list(staff.values_list("recipient__username", flat=True)) == ["admin"]


@pytest.mark.django_db
def test_the_requester_page_offers_no_cancel_of_a_ratification(
    glass_on,
    outsider,
    client,
    transitions,
    syncs,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    ratification = break_and_move(
        glass_on, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    client.force_login(outsider)
    page = client.get(reverse("reviews:request_detail", args=[ratification.pk])).content.decode()
    assert 'id="cancel"' not in page
    refused = client.post(reverse("reviews:cancel", args=[ratification.pk]))
    assert refused.status_code == 403
    ratification.refresh_from_db()
    assert ratification.decision == Decision.PENDING


@pytest.mark.django_db(transaction=True)
def test_ends_racing_leave_the_move_unratified_exactly_once(
    glass_on, outsider, admin_user, scientist1, transitions, syncs, simple_worker
):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    ratification = break_and_move(glass_on, outsider, transitions, syncs, simple_worker)
    barrier = threading.Barrier(3, timeout=60)
    outcomes: list[str] = []

    def end(action) -> None:
        try:
            barrier.wait()
            action()
            outcomes.append("ended")
        except Exception as error:  # noqa: BLE001 - every outcome is asserted below
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    actions = [
        lambda: deciding.request_cancel(request_id=ratification.pk, user=admin_user),
        lambda: voting.vote_cast(
            request_id=ratification.pk, user=scientist1, decision="reject", comment="no"
        ),
        lambda: deciding.requests_expire_overdue(
            now=ratification.expires_at + timedelta(seconds=1)
        ),
    ]
    threads = [threading.Thread(target=end, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=120, message="three ends of one ratification at once")

    assert len(outcomes) == 3
    assert AuditEvent.objects.filter(action="break_glass.unratified").count() == 1
    assert TransitionRequest.objects.filter(kind=RequestKind.ROLLBACK).count() == 1
    ratification.refresh_from_db()
    assert ratification.decision in (Decision.CANCELLED, Decision.REJECTED, Decision.EXPIRED)


@pytest.mark.django_db
def test_a_ratification_that_cannot_pass_is_said_before_and_mailed_to_staff(
    promoted, cast, lead, client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """Scenario 3: the only ml-lead breaks glass; the ratification needs 1 of ml-leads."""
    for user in cast.values():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    policies_load(
        text=policies_with(break_glass="ratify_within: 1h, on_unratified: alert").replace(
            "groups: [oncall]", "groups: [ml-leads]"
        )
    )
    client.force_login(lead)
    page = client.get(reverse("registry:model_detail", args=[promoted])).content.decode()
    assert "Its ratification cannot pass without you" in page
    assert "ml-leads needs 1 and has 0 member(s) besides lead" in page

    break_and_move(
        promoted, lead, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    event = AuditEvent.objects.get(action="break_glass.unratifiable")
    assert event.details["groups"] == ["ml-leads"]
    mail = Notification.objects.get(kind=NotificationKind.UNRATIFIABLE)
    assert mail.recipient.username == "admin"


@pytest.mark.django_db
def test_a_ratification_that_can_pass_warns_nobody(
    glass_on,
    outsider,
    client,
    transitions,
    syncs,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    client.force_login(outsider)
    page = client.get(reverse("registry:model_detail", args=[glass_on])).content.decode()
    assert "Break glass: move a version now" in page
    assert "cannot pass without you" not in page
    break_and_move(
        glass_on, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    assert not AuditEvent.objects.filter(action="break_glass.unratifiable").exists()


@pytest.mark.django_db
def test_break_glass_skips_every_gate_and_the_ratification_shows_them(
    promoted, cast, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """Scenario 5: an evidence gate that fails (v3's signature drops a column v1 takes) and a
    metric gate that fails no longer refuse break glass: both are recorded skipped."""
    strict = (
        policies_with(break_glass="ratify_within: 1h, on_unratified: alert")
        .replace("value: 0.80, kind: required}", "value: 0.95, kind: required}")
        .replace(
            "    archive_existing: true\n",
            "    archive_existing: true\n"
            "    evidence_gates: [{evidence: signature_breaking, equals: false, kind: required}]\n",
        )
    )
    policies_load(text=strict)
    versions = ModelVersion.objects.filter(model__name=promoted)
    store_evidence(versions.get(version=1), SIGNATURE)
    store_evidence(versions.get(version=3), {**SIGNATURE, "inputs": SIGNATURE["inputs"][:1]})
    ratification = break_and_move(
        promoted, outsider, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
    )
    move = ratification.ratifies
    assert (move.decision, mlflow_client.get_version(promoted, 3).stage) == (
        Decision.APPROVED,
        "Production",
    )
    evidence_gate = next(g for g in move.gate_results if g["metric"].startswith("evidence"))
    assert (
        evidence_gate["passed"] is False and "signature_breaking is true" in evidence_gate["reason"]
    )
    kinds = {g["metric"]: g.get("skipped") for g in move.gate_results}
    assert kinds == {"accuracy": True, "f1": True, "evidence: signature_breaking": True}
    assert ratification.gate_results == move.gate_results
    assert not [g for g in move.gate_results if not g["skipped"]]
    page = reverse("reviews:request_detail", args=[ratification.pk])
    from django.test import Client

    viewer = Client()
    viewer.force_login(cast["lead"])
    assert "skipped: break glass" in viewer.get(page).content.decode()
