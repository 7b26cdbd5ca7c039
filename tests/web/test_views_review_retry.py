"""Retrying a failed transition (`reviews:retry`): staff only; GET → 405, anonymous → login, a
transition that did not fail → the reason and nothing changed.

Every role against every mutating route: tests/reliability/test_permissions.py.
"""

from __future__ import annotations

import pytest

from reviews.audit import chain
from reviews.models import AuditEvent, Decision, Execution, TransitionRequest
from tests.pages import action_url, detail_url, login, messages_of, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]


@pytest.fixture
def failed(pending):
    TransitionRequest.objects.filter(pk=pending.pk).update(
        decision=Decision.APPROVED,
        execution=Execution.FAILED,
        execution_error="MLflow answered 503",
        execution_attempts=3,
    )
    pending.refresh_from_db()
    return pending


def test_staff_sees_the_error_and_retries_a_failed_transition(
    client, failed, admin_user, django_capture_on_commit_callbacks
):
    page = login(client, admin_user).get(detail_url(failed))
    assert "MLflow answered 503" in text_of(page)
    assert 'id="retry-form" hidden' not in page.content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(action_url("retry", failed), follow=True)
    assert "The transition is queued again." in messages_of(response)
    assert len(callbacks) == 1  # the transition job, enqueued once committed
    failed.refresh_from_db()
    assert failed.execution == Execution.QUEUED
    assert AuditEvent.objects.filter(action="transition.retry", request=failed).exists()


def test_non_staff_sees_no_retry_and_cannot_retry(client, failed, requester):
    page = login(client, requester).get(detail_url(failed))
    assert 'id="retry-form"' not in page.content.decode()
    response = client.post(action_url("retry", failed))
    assert response.status_code == 403
    failed.refresh_from_db()
    assert failed.execution == Execution.FAILED


def test_get_on_retry_url_changes_nothing(client, failed, admin_user):
    assert login(client, admin_user).get(action_url("retry", failed)).status_code == 405
    failed.refresh_from_db()
    assert failed.execution == Execution.FAILED


def test_anonymous_retry_goes_to_login(client, failed):
    response = client.post(action_url("retry", failed))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_retrying_a_transition_that_did_not_fail_shows_why(client, pending, admin_user):
    response = login(client, admin_user).post(action_url("retry", pending), follow=True)
    assert any("has no failed transition to retry" in m for m in messages_of(response))
    pending.refresh_from_db()
    assert (pending.decision, pending.execution) == (Decision.PENDING, Execution.NONE)


def test_a_failure_no_retry_can_change_offers_no_retry_and_says_why(
    client, failed, admin_user, django_capture_on_commit_callbacks
):
    chain.record(
        "transition.failed",
        request=failed,
        details={"error": "fraud version 2 no longer exists in MLflow.", "permanent": True},
    )

    page = login(client, admin_user).get(detail_url(failed)).content.decode()
    assert 'id="retry-form" hidden' in page
    assert "Version 2 no longer exists in MLflow: retrying cannot bring it back" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(action_url("retry", failed), follow=True)
    assert any("retrying cannot bring it back" in m for m in messages_of(response))
    assert callbacks == []
    failed.refresh_from_db()
    assert failed.execution == Execution.FAILED
