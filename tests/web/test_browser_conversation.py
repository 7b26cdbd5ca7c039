"""The review as a conversation in a real browser: comments between requester and reviewer, the
activity, re-review after a dismissed approval, the previous-rejection note, cancel with a reason,
and a vote from a stale tab that is refused with its text kept.

The mirror is written by the factories (no MLflow needed: every page reads cached history).
Screenshots of the request page, desktop and 390 px wide, land in var/screenshots/.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from registry.models import Stage
from reviews.conversation import comments
from reviews.decisions import deciding, opening, voting
from reviews.models import Decision, Notification, TransitionRequest, Vote
from tests.factories import cache_all_history, make_model, make_version

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_mlflow"),
]

REJECTION = "Recall on the March slice fell 4 points."


@pytest.fixture
def fraud(policies):
    """fraud: v1 in Production, v2 and v3 candidates; everyone has an address."""
    for user in get_user_model().objects.all():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    model = make_model("fraud", description="Scores card payments.")
    specs = [
        (Stage.PRODUCTION, {"accuracy": 0.85, "f1": 0.80, "log_loss": 0.40}),
        (Stage.NONE, {"accuracy": 0.90, "f1": 0.84, "log_loss": 0.31}),
        (Stage.NONE, {"accuracy": 0.91, "f1": 0.85, "log_loss": 0.30}),
    ]
    for number, (stage, metrics) in enumerate(specs, start=1):
        version = make_version(model, number, stage=stage, metrics=metrics, params={"lr": 0.1})
        cache_all_history(version)
    return model


@pytest.fixture
def pending(fraud, requester):
    return opening.request_create(
        model="fraud", version=2, target="Production", requester=requester, comment="Retrained."
    )


def refused_load(session, status: str) -> None:
    """A form answered with an error status, which Chromium logs as a failed load: expected."""
    assert session.errors == [
        f"Failed to load resource: the server responded with a status of {status}"
    ]
    session.errors.clear()


def test_comment_thread_between_requester_and_reviewer_in_the_activity(
    sign_in, pending, scientist1
):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve", comment="ok")
    reviewer = sign_in("lead")
    page = reviewer.goto(f"/reviews/{pending.pk}/")
    page.fill("#comment-body", "Did the holdout include the EU merchants?")
    page.click("#comment-form button[type=submit]")
    page.wait_for_url(f"**/reviews/{pending.pk}/#timeline")
    assert "Your comment is posted." in page.inner_text(".messages")

    author = sign_in("requester")
    page = author.goto(f"/reviews/{pending.pk}/")
    page.fill("#comment-body", "Yes: run 12 has them, 18% of the holdout.")
    page.click("#comment-form button[type=submit]")
    page.wait_for_url(f"**/reviews/{pending.pk}/#timeline")
    entries = page.locator("#timeline .timeline-entry")
    texts = [entries.nth(i).inner_text() for i in range(entries.count())]
    assert len(texts) == 4
    assert texts[0].startswith("requester Requested Production against v1")
    assert texts[1].startswith("scientist1 Approved (for data-science)")
    assert "Did the holdout include the EU merchants?" in texts[2]
    assert "Yes: run 12 has them" in texts[3]
    # Each side heard of the other's comment, nobody of their own.
    mailed = Notification.objects.filter(kind="comment").values_list(
        "recipient__username", "event__actor"
    )
    assert ("requester", "lead") in mailed and ("lead", "requester") in mailed
    assert all(recipient != actor for recipient, actor in mailed)
    author.shot("request-conversation.png")

    phone = sign_in("scientist2", width=390, height=844)
    phone.goto(f"/reviews/{pending.pk}/")
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= 390
    phone.page.locator("#timeline").scroll_into_view_if_needed()
    phone.shot("request-conversation-phone.png")
    for session in (reviewer, author, phone):
        session.assert_clean()


def test_re_review_after_a_dismissed_approval(sign_in, pending, lead):
    voting.vote_cast(request_id=pending.pk, user=lead, decision="approve", comment="v2 wins")
    with transaction.atomic():
        voting.approvals_mark_stale(
            TransitionRequest.objects.get(pk=pending.pk),
            reason="Production is now held by v3 (was v1).",
        )
    assert Notification.objects.get(kind="rereview").recipient == lead

    reviewer = sign_in("lead")
    inbox = reviewer.goto("/reviews/").locator("#awaiting")
    assert inbox.locator(".chip-rereview").inner_text() == "re-review"
    assert "Your approval was dismissed: Production is now held by v3" in inbox.inner_text()
    inbox.locator(".request-link").click()
    page = reviewer.page
    page.wait_for_url(f"**/reviews/{pending.pk}/")
    notice = page.inner_text("#stale-notice")
    assert "Your approval no longer counts: Production is now held by v3 (was v1)." in notice
    assert "v2 wins" in notice
    assert "Approvals dismissed: lead" in page.inner_text("#timeline")
    reviewer.shot("request-rereview.png")
    page.fill("#vote-comment", "Still better than v3's baseline.")
    page.click("button[value=approve]")
    page.wait_for_url(f"**/reviews/{pending.pk}/")
    assert "You approved" in page.inner_text(".messages")
    assert Vote.objects.filter(user=lead, stale=False).count() == 1
    assert reviewer.goto("/reviews/").locator("#awaiting .chip-rereview").count() == 0
    reviewer.assert_clean()


def test_cancel_asks_for_confirmation_and_shows_the_reason(sign_in, pending):
    author = sign_in("requester")
    page = author.goto(f"/reviews/{pending.pk}/")
    confirm = page.locator("#cancel button[type=submit]")
    assert not confirm.is_visible()  # one click is not enough
    page.click("#cancel summary")
    page.fill("#cancel-reason", "Found a label leak; retraining.")
    author.shot("request-cancel-confirm.png")
    confirm.click()
    page.wait_for_url(f"**/reviews/{pending.pk}/")
    assert page.locator("#status-badge").inner_text() == "cancelled"
    assert "Cancelled by requester: Found a label leak; retraining." in page.inner_text("#timeline")
    assert TransitionRequest.objects.get(pk=pending.pk).decision == Decision.CANCELLED
    author.assert_clean()


def test_a_vote_from_a_stale_tab_is_refused_and_keeps_the_text(sign_in, pending, requester):
    reviewer = sign_in("lead")
    page = reviewer.goto(f"/reviews/{pending.pk}/")
    page.fill("#vote-comment", "Looks good, the EU slice improved.")
    # Meanwhile, in another tab, the requester cancels.
    deciding.request_cancel(request_id=pending.pk, user=requester, reason="Superseded by v3.")
    page.click("button[value=approve]")
    page.wait_for_load_state()
    refused_load(reviewer, "409 (Conflict)")
    assert "became cancelled" in page.inner_text("#vote-refusal")
    assert "Your vote was not recorded" in page.inner_text("#kept-vote-text")
    assert page.input_value("#comment-body") == "Looks good, the EU slice improved."
    assert not Vote.objects.exists()
    reviewer.shot("request-stale-tab.png")
    # The text can still go into the conversation, now that the page is current.
    page.click("#comment-form button[type=submit]")
    page.wait_for_url(f"**/reviews/{pending.pk}/#timeline")
    assert "Looks good, the EU slice improved." in page.inner_text("#timeline")
    reviewer.assert_clean()


def test_a_comment_from_a_stale_tab_is_refused_and_keeps_the_text(sign_in, pending, requester):
    reviewer = sign_in("scientist1")
    page = reviewer.goto(f"/reviews/{pending.pk}/")
    page.fill("#comment-body", "One more question on drift.")
    deciding.request_cancel(request_id=pending.pk, user=requester)
    page.click("#comment-form button[type=submit]")
    page.wait_for_load_state()
    refused_load(reviewer, "409 (Conflict)")
    assert "Nothing was posted" in page.inner_text("#comment-refusal")
    assert page.input_value("#comment-body") == "One more question on drift."
    reviewer.assert_clean()


def test_previous_rejection_note_must_be_answered(sign_in, fraud, requester, scientist1, lead):
    first = opening.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )
    voting.vote_cast(request_id=first.pk, user=scientist1, decision="reject", comment=REJECTION)
    other = opening.request_create(
        model="fraud", version=3, target="Production", requester=requester
    )

    author = sign_in("requester")
    page = author.goto("/models/fraud/versions/2/request/")
    note = page.inner_text(".preview[data-target='Production'] .previous-rejection")
    assert note.startswith(f"Previously rejected in #{first.pk} by scientist1: '{REJECTION}'")
    assert f"#{other.pk} (v3)" in page.inner_text(".preview[data-target='Production'] .other-open")
    page.fill("#promotion-comment", "Retrained with March data.")
    page.click("#promotion-form button[type=submit]")
    page.wait_for_load_state()
    refused_load(author, "400 (Bad Request)")
    assert "Answer it" in page.inner_text("#promotion-answer-error")
    assert page.input_value("#promotion-comment") == "Retrained with March data."
    page.fill("#promotion-answer", "March data added; recall on the slice is back to 0.91.")
    author.shot("promotion-previous-rejection.png")
    page.click("#promotion-form button[type=submit]")
    page.wait_for_url("**/reviews/*/")
    related = page.inner_text("#related")
    assert f"Previously rejected in #{first.pk} by scientist1" in related
    assert "recall on the slice is back to 0.91" in related
    assert f"#{other.pk} (v3)" in related
    author.shot("request-related.png")
    author.assert_clean()

    reviewer = sign_in("lead", width=390, height=844)
    page = reviewer.goto(f"/reviews/{other.pk}/")
    assert "#" in page.inner_text("#related") and "(v2)" in page.inner_text("#related")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    reviewer.shot("request-related-phone.png")
    reviewer.assert_clean()
    comments.comment_post(request_id=other.pk, user=lead, body="Which of the two first?")
