"""Cancelling a request (`reviews:cancel`): the requester may, others may not; GET → 405,
anonymous → login, a decided request → the reason and nothing changed.

Every role against every mutating route: tests/reliability/test_permissions.py.
"""

from __future__ import annotations

import pytest

from reviews.decisions import voting
from reviews.models import Decision
from tests.pages import action_url, login, messages_of, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]


def test_requester_cancels_a_pending_request(client, pending, requester):
    response = login(client, requester).post(action_url("cancel", pending), follow=True)
    assert f"Request #{pending.pk} is cancelled." in messages_of(response)
    pending.refresh_from_db()
    assert pending.decision == Decision.CANCELLED
    assert 'action="' + action_url("cancel", pending) not in response.content.decode()


def test_get_on_cancel_url_changes_nothing(client, pending, requester):
    assert login(client, requester).get(action_url("cancel", pending)).status_code == 405
    pending.refresh_from_db()
    assert pending.decision == Decision.PENDING


def test_anonymous_cancel_goes_to_login(client, pending):
    response = client.post(action_url("cancel", pending))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    pending.refresh_from_db()
    assert pending.decision == Decision.PENDING


def test_someone_else_cannot_cancel(client, pending, lead):
    response = login(client, lead).post(action_url("cancel", pending))
    assert response.status_code == 403
    assert "Only the requester or an admin can cancel this request." in text_of(response)
    pending.refresh_from_db()
    assert pending.decision == Decision.PENDING


def test_cancelling_a_decided_request_shows_why(client, pending, requester, scientist1):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="reject", comment="no")
    response = login(client, requester).post(action_url("cancel", pending), follow=True)
    assert f"Request #{pending.pk} is already rejected." in messages_of(response)
    pending.refresh_from_db()
    assert pending.decision == Decision.REJECTED
