"""Deciding a request (`reviews.decisions.deciding`): never twice, cancelled when its version is
deleted in MLflow, expiry, cancel, an admin's retry, and the audit chain after a busy review."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import ChangeKind, ModelVersion, RegistryChange
from reviews.audit import verification
from reviews.decisions import deciding
from reviews.errors import NotAllowed, RequestClosed, WrongExecutionState
from reviews.execution import registry_events
from reviews.models import AuditEvent, Decision, Execution, TransitionRequest
from tests.factories import approve, make_mirror
from tests.factories import open_request as create
from tests.factories import reloaded as refresh

pytestmark = pytest.mark.django_db


def test_a_decided_request_is_never_decided_again(policies, requester, admin_user):
    make_mirror(versions={2: ("None", {"accuracy": 0.5, "f1": 0.5})})
    request = refresh(create(requester))  # rejected by its gates
    events = AuditEvent.objects.count()

    with pytest.raises(RequestClosed) as refused:
        deciding.decide(request, Decision.APPROVED, actor=admin_user, reason="again")

    assert str(refused.value) == (
        f"Request #{request.pk} is already rejected; it cannot also be approved."
    )
    assert refresh(request).decision == Decision.REJECTED
    assert refresh(request).execution == Execution.NONE
    assert AuditEvent.objects.count() == events


def test_pending_request_ends_when_its_version_is_deleted_in_mlflow(policies, requester):
    versions = make_mirror()
    request = create(requester)
    ModelVersion.objects.filter(pk=versions[2].pk).update(deleted=True)
    change = RegistryChange.objects.create(
        model=versions[2].model, version=versions[2], kind=ChangeKind.VERSION_DELETED
    )

    registry_events.handle_changes([change])

    assert refresh(request).decision == Decision.CANCELLED


def test_overdue_pending_requests_expire_and_nothing_else(policies, requester):
    make_mirror()
    overdue = create(requester)
    fresh = create(requester, target="@champion")
    TransitionRequest.objects.filter(pk=overdue.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert deciding.requests_expire_overdue() == [overdue.pk]

    assert refresh(overdue).decision == Decision.EXPIRED
    assert refresh(overdue).execution == Execution.NONE
    assert refresh(fresh).decision == Decision.PENDING
    assert AuditEvent.objects.get(action="request.expired").actor == "system"


def test_requester_can_cancel_a_pending_request(policies, requester):
    make_mirror()
    request = create(requester)

    deciding.request_cancel(request_id=request.pk, user=requester)

    assert refresh(request).decision == Decision.CANCELLED


def test_only_the_requester_or_an_admin_cancels(policies, requester, scientist1, admin_user):
    make_mirror()
    request = create(requester)

    with pytest.raises(NotAllowed):
        deciding.request_cancel(request_id=request.pk, user=scientist1)
    deciding.request_cancel(request_id=request.pk, user=admin_user)
    with pytest.raises(RequestClosed):
        deciding.request_cancel(request_id=request.pk, user=requester)


def test_retry_needs_a_failed_execution_and_an_admin(policies, requester, admin_user):
    make_mirror()
    request = create(requester)

    with pytest.raises(NotAllowed):
        deciding.transition_retry(request_id=request.pk, user=requester)
    with pytest.raises(WrongExecutionState, match="no failed transition to retry"):
        deciding.transition_retry(request_id=request.pk, user=admin_user)


def test_the_audit_chain_holds_after_a_busy_review(
    policies, requester, lead, scientist1, scientist2
):
    make_mirror()
    request = create(requester)
    approve(request, lead)
    approve(request, scientist1)
    deciding.request_cancel(request_id=request.pk, user=requester)

    result = verification.verify()

    # The policy load, the request, two votes, the cancellation.
    assert result.ok and result.checked == AuditEvent.objects.count() == 5
