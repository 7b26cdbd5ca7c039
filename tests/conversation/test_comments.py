"""Comments without a vote: who may post them, the refusals, and who is told by mail."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from reviews.conversation import comments
from reviews.decisions import deciding, voting
from reviews.errors import CommentTooLong, EmptyComment, PageStale, RequestNotFound
from reviews.models import COMMENT_MAX, AuditEvent, Comment, Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def addressed(cast):
    """Everyone in the cast has an address, so the outbox shows who would be mailed."""
    for user in get_user_model().objects.all():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])


def mailed(kind: str) -> set[str]:
    rows = Notification.objects.filter(kind=kind).select_related("recipient")
    names = [row.recipient.username for row in rows]
    assert len(names) == len(set(names)), f"someone got two mails: {sorted(names)}"
    return set(names)


def test_a_comment_is_a_row_and_an_audit_event_with_its_text(pending, outsider):
    comment = comments.comment_post(
        request_id=pending.pk, user=outsider, body="  Was the holdout refreshed?  "
    )
    assert Comment.objects.get().body == "Was the holdout refreshed?"
    event = AuditEvent.objects.get(action="comment.posted")
    assert event.actor == "outsider" and event.request_id == pending.pk
    assert event.details == {"comment": comment.pk, "body": "Was the holdout refreshed?"}


def test_requester_and_anyone_who_sees_the_request_may_comment(pending, requester, outsider):
    comments.comment_post(request_id=pending.pk, user=requester, body="Retrained on June.")
    comments.comment_post(request_id=pending.pk, user=outsider, body="Looks fine.")
    assert list(pending.comments.values_list("author__username", flat=True)) == [
        "requester",
        "outsider",
    ]


@pytest.mark.parametrize("body", ["", "   \n "])
def test_an_empty_comment_is_refused_and_nothing_recorded(pending, lead, body):
    with pytest.raises(EmptyComment, match="Write something"):
        comments.comment_post(request_id=pending.pk, user=lead, body=body)
    assert not Comment.objects.exists()
    assert not AuditEvent.objects.filter(action="comment.posted").exists()


def test_a_comment_over_the_limit_is_refused(pending, lead):
    with pytest.raises(CommentTooLong, match=f"{COMMENT_MAX:,} characters"):
        comments.comment_post(request_id=pending.pk, user=lead, body="x" * (COMMENT_MAX + 1))
    assert not Comment.objects.exists()


def test_a_comment_on_an_unknown_request_is_refused(pending, lead):
    with pytest.raises(RequestNotFound):
        comments.comment_post(request_id=pending.pk + 99, user=lead, body="hello")


def test_a_comment_from_a_page_that_showed_another_state_is_refused(pending, requester, lead):
    deciding.request_cancel(request_id=pending.pk, user=requester)
    with pytest.raises(PageStale, match="became cancelled"):
        comments.comment_post(
            request_id=pending.pk, user=lead, body="Approve?", seen_decision="pending"
        )
    assert not Comment.objects.exists()
    # Once the page shows the decision, the conversation may go on.
    comments.comment_post(request_id=pending.pk, user=lead, body="Why?", seen_decision="cancelled")
    assert Comment.objects.count() == 1


def test_a_comment_mails_requester_voters_and_approvers_but_not_its_author(
    pending, addressed, scientist1, lead, outsider
):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve")
    comments.comment_post(request_id=pending.pk, user=lead, body="One question first.")
    # Approvers (lead, scientist1-3), the requester; not the author, not the outsider.
    assert mailed("comment") == {"requester", "scientist1", "scientist2", "scientist3"}


def test_a_voter_outside_the_approvers_and_the_requester_hear_of_an_outsiders_comment(
    pending, addressed, outsider
):
    comments.comment_post(request_id=pending.pk, user=outsider, body="Drift on EU data?")
    assert mailed("comment") == {"requester", "lead", "scientist1", "scientist2", "scientist3"}


def test_each_comment_is_one_mail_per_person(pending, addressed, requester, lead):
    comments.comment_post(request_id=pending.pk, user=requester, body="Ping.")
    comments.comment_post(request_id=pending.pk, user=requester, body="Ping again.")
    rows = Notification.objects.filter(kind="comment", recipient=lead)
    assert rows.count() == 2
    assert len(set(rows.values_list("event_id", flat=True))) == 2


def test_latest_comments_are_the_newest_oldest_first(pending, requester):
    for n in range(5):
        comments.comment_post(request_id=pending.pk, user=requester, body=f"note {n}")
    latest = comments.latest_comments(pending, limit=3)
    assert [c.body for c in latest] == ["note 2", "note 3", "note 4"]


def test_the_comment_mail_quotes_it_and_links_the_request(pending, addressed, lead, settings):
    from reviews.notify import render

    settings.QUORUM_BASE_URL = "https://quorum.example.com"
    comments.comment_post(request_id=pending.pk, user=lead, body="Is <b>EU</b> covered?")
    mail = render(AuditEvent.objects.get(action="comment.posted"), "comment")
    assert mail["subject"] == "[Quorum] lead commented on fraud v2 → Production"
    assert "Is <b>EU</b> covered?" in mail["text"]
    assert "Is &lt;b&gt;EU&lt;/b&gt; covered?" in mail["html"]
    assert f"https://quorum.example.com/reviews/{pending.pk}/" in mail["text"]
