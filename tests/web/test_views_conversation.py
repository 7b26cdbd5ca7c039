"""The request page as a conversation: comments, the activity, cancel with a reason, and forms
sent from a page that went stale, which are refused with their text kept."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from reviews.conversation import comments
from reviews.decisions import deciding, voting
from reviews.models import AuditEvent, Comment, Decision, TransitionRequest, Vote
from tests.pages import text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]


def url(name: str, request) -> str:
    return reverse(f"reviews:{name}", args=[request.pk])


def textarea(response, name: str) -> str:
    found = re.search(
        rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', response.content.decode(), re.S
    )
    assert found, f"no textarea {name}"
    return html.unescape(found.group(1))


# -- comments -----------------------------------------------------------------------------------


def test_requester_comments_and_the_activity_shows_it(client, pending, requester):
    client.force_login(requester)
    response = client.post(
        url("comment", pending), {"body": "Retrained on June data.", "seen_decision": "pending"}
    )
    assert response.status_code == 302 and response["Location"].endswith("#timeline")
    page = client.get(url("request_detail", pending))
    text = text_of(page)
    assert "Your comment is posted." in text
    assert "requester Commented" in text and "Retrained on June data." in text


def test_anyone_signed_in_may_comment(client, pending, outsider):
    client.force_login(outsider)
    response = client.post(url("comment", pending), {"body": "Drift on EU traffic?"})
    assert response.status_code == 302
    assert Comment.objects.get().author == outsider


def test_get_on_comment_url_changes_nothing(client, pending, lead):
    client.force_login(lead)
    assert client.get(url("comment", pending)).status_code == 405
    assert not Comment.objects.exists()


def test_anonymous_comment_goes_to_login(client, pending):
    response = client.post(url("comment", pending), {"body": "hi"})
    assert response.status_code == 302 and "/login" in response["Location"]
    assert not Comment.objects.exists()


def test_comment_on_unknown_request_is_404(client, pending, lead):
    client.force_login(lead)
    response = client.post(reverse("reviews:comment", args=[pending.pk + 9]), {"body": "hi"})
    assert response.status_code == 404


def test_empty_comment_is_refused_on_the_page(client, pending, lead):
    client.force_login(lead)
    response = client.post(url("comment", pending), {"body": "  "})
    assert response.status_code == 400
    assert "Write something before posting a comment." in text_of(response)
    assert not Comment.objects.exists()


def test_too_long_comment_is_refused_and_its_text_kept(client, pending, lead):
    client.force_login(lead)
    body = "x" * 4001
    response = client.post(url("comment", pending), {"body": body})
    assert response.status_code == 400
    assert textarea(response, "body") == body
    assert not Comment.objects.exists()


# -- a page that went stale ---------------------------------------------------------------------


def test_comment_from_a_stale_tab_is_refused_and_its_text_kept(client, pending, requester, lead):
    deciding.request_cancel(request_id=pending.pk, user=requester, reason="Leak found.")
    client.force_login(lead)
    response = client.post(
        url("comment", pending), {"body": "Please add the EU slice.", "seen_decision": "pending"}
    )
    assert response.status_code == 409
    text = text_of(response)
    assert f"request #{pending.pk} became cancelled" in text and "Nothing was posted" in text
    assert textarea(response, "body") == "Please add the EU slice."
    assert 'name="seen_decision" value="cancelled"' in response.content.decode()
    assert not Comment.objects.exists()


def test_vote_from_a_stale_tab_is_refused_and_its_text_moves_to_the_comment_form(
    client, pending, requester, lead
):
    deciding.request_cancel(request_id=pending.pk, user=requester)
    client.force_login(lead)
    response = client.post(
        url("vote", pending),
        {"decision": "approve", "comment": "Great lift on EU.", "seen_decision": "pending"},
    )
    assert response.status_code == 409
    text = text_of(response)
    assert "became cancelled" in text and "Your vote was not recorded." in text
    assert textarea(response, "body") == "Great lift on EU."
    assert not Vote.objects.exists()


def test_second_vote_from_another_tab_is_refused_and_its_text_kept(
    client, pending, scientist1, lead
):
    # Another tab already voted: the page refuses and keeps what was typed.
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve")
    client.force_login(scientist1)
    response = client.post(
        url("vote", pending), {"decision": "reject", "comment": "Second thoughts: leak."}
    )
    assert response.status_code == 409
    assert "You already voted (approve)" in text_of(response)
    assert textarea(response, "body") == "Second thoughts: leak."
    assert Vote.objects.get().decision == "approve"


# -- cancel with a reason -----------------------------------------------------------------------


def test_cancel_asks_for_confirmation_with_an_optional_reason(client, pending, requester):
    client.force_login(requester)
    page = client.get(url("request_detail", pending)).content.decode()
    assert '<details class="inline-form cancel-confirm" id="cancel">' in page
    assert f"Yes, cancel request #{pending.pk}" in page and 'name="reason"' in page


def test_cancel_reason_is_the_decision_reason_and_in_the_activity(client, pending, requester):
    client.force_login(requester)
    response = client.post(url("cancel", pending), {"reason": "Found a leak in the features."})
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.decision == Decision.CANCELLED
    assert pending.decision_reason == "Cancelled by requester: Found a leak in the features."
    event = AuditEvent.objects.get(action="request.cancelled")
    assert event.details["reason"] == pending.decision_reason
    page = client.get(url("request_detail", pending))
    last = page.context["timeline"][-1]
    assert (last.title, last.text) == ("Request cancelled", pending.decision_reason)
    assert "Found a leak in the features." in text_of(page)


def test_cancel_reason_over_the_limit_is_refused_and_kept(client, pending, requester):
    client.force_login(requester)
    response = client.post(url("cancel", pending), {"reason": "y" * 4001})
    assert response.status_code == 400
    assert textarea(response, "reason") == "y" * 4001
    assert TransitionRequest.objects.get().decision == Decision.PENDING


# -- the activity on the page -------------------------------------------------------------------


def test_the_activity_is_on_the_page_for_everyone_who_can_see_it(
    client, pending, scientist1, lead, outsider
):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve", comment="lgtm")
    comments.comment_post(request_id=pending.pk, user=lead, body="Checked the slices.")
    client.force_login(outsider)
    text = text_of(client.get(url("request_detail", pending)))
    assert "Activity 3" in text
    order = [text.index(s) for s in ("Requested Production", "lgtm", "Checked the slices.")]
    assert order == sorted(order)


def test_comment_text_is_escaped(client, pending, lead):
    comments.comment_post(request_id=pending.pk, user=lead, body="<img src=x onerror=alert(1)>")
    client.force_login(lead)
    body = client.get(url("request_detail", pending)).content.decode()
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
