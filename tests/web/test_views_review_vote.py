"""Voting on a request (`reviews:vote`): approve, reject with a reason, quorum reached; GET → 405,
anonymous → login, ineligible → 403, a decided request or a second vote → the reason and nothing
changed, no CSRF token → 403.

Every role against every mutating route: tests/reliability/test_permissions.py.
"""

from __future__ import annotations

import pytest

from reviews.decisions import voting
from reviews.models import AuditEvent, Decision, Execution, Vote
from tests.pages import action_url, detail_url, login, messages_of, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]


def test_eligible_reviewer_approves_and_sees_progress(client, pending, lead):
    response = login(client, lead).post(
        action_url("vote", pending), {"decision": "approve", "comment": "Looks right."}, follow=True
    )
    assert response.redirect_chain == [(detail_url(pending), 302)]
    assert "You approved. The request waits for the other sign-offs." in messages_of(response)
    text = text_of(response)
    assert "ml-leads 1/1" in text and "Looks right." in text
    vote = Vote.objects.get(request=pending, user=lead)
    assert (vote.decision, vote.groups) == ("approve", ["ml-leads"])


def test_last_approval_approves_the_request(client, pending, lead, scientist1, scientist2):
    for voter in (lead, scientist1):
        voting.vote_cast(request_id=pending.pk, user=voter, decision="approve")
    response = login(client, scientist2).post(
        action_url("vote", pending), {"decision": "approve"}, follow=True
    )
    assert "You approved: quorum reached, the transition is queued." in messages_of(response)
    pending.refresh_from_db()
    assert (pending.decision, pending.execution) == (Decision.APPROVED, Execution.QUEUED)
    assert 'id="execution-spinner"' in response.content.decode()


def test_rejection_with_a_comment_rejects_with_that_reason(client, pending, scientist1):
    response = login(client, scientist1).post(
        action_url("vote", pending),
        {"decision": "reject", "comment": "Recall dropped on the March slice."},
        follow=True,
    )
    pending.refresh_from_db()
    assert pending.decision == Decision.REJECTED
    assert pending.decision_reason == "Recall dropped on the March slice."
    assert "Recall dropped on the March slice." in text_of(response)


def test_rejection_without_a_comment_is_refused_inline_and_changes_nothing(
    client, pending, scientist1
):
    events = AuditEvent.objects.count()
    response = login(client, scientist1).post(
        action_url("vote", pending), {"decision": "reject", "comment": "  "}
    )
    assert response.status_code == 400
    assert "Say why you reject" in text_of(response)
    assert 'aria-invalid="true"' in response.content.decode()
    assert not Vote.objects.exists() and AuditEvent.objects.count() == events
    pending.refresh_from_db()
    assert pending.decision == Decision.PENDING


def test_get_on_vote_url_is_refused_and_changes_nothing(client, pending, lead):
    response = login(client, lead).get(action_url("vote", pending), {"decision": "approve"})
    assert response.status_code == 405
    assert not Vote.objects.exists()


def test_anonymous_vote_goes_to_login_and_changes_nothing(client, pending):
    response = client.post(action_url("vote", pending), {"decision": "approve"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert not Vote.objects.exists()


@pytest.mark.parametrize("who", ["outsider", "requester"])
def test_ineligible_vote_is_a_403_and_changes_nothing(client, pending, cast, who):
    response = login(client, cast[who]).post(action_url("vote", pending), {"decision": "approve"})
    assert response.status_code == 403
    assert "You" in text_of(response)  # the engine's sentence, on the 403 page
    assert not Vote.objects.exists()


def test_vote_on_a_decided_request_shows_why_and_changes_nothing(
    client, pending, scientist1, scientist2
):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="reject", comment="no")
    events = AuditEvent.objects.count()
    response = login(client, scientist2).post(action_url("vote", pending), {"decision": "approve"})
    # The page as it is now, the reason on it: no redirect, so nothing typed is lost.
    assert response.status_code == 409
    assert "This request is already rejected." in text_of(response)
    assert Vote.objects.filter(user=scientist2).count() == 0
    assert AuditEvent.objects.count() == events


def test_second_vote_by_the_same_user_is_refused(client, pending, lead):
    voting.vote_cast(request_id=pending.pk, user=lead, decision="approve")
    response = login(client, lead).post(
        action_url("vote", pending), {"decision": "reject", "comment": "changed my mind"}
    )
    assert response.status_code == 409
    assert "You already voted (approve) on this request." in text_of(response)
    assert "changed my mind" in text_of(response)  # kept, in the comment form
    assert Vote.objects.get(user=lead).decision == "approve"


def test_vote_on_an_unknown_request_is_a_404(client, lead):
    response = login(client, lead).post("/reviews/999999/vote", {"decision": "approve"})
    assert response.status_code == 404


def test_vote_without_a_csrf_token_is_refused(pending, lead):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    response = client.post(action_url("vote", pending), {"decision": "approve"})
    assert response.status_code == 403
    assert not Vote.objects.exists()
