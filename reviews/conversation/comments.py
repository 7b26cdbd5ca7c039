"""Comments on a request without a vote: anyone who may see a request may say something on it.

A comment is a row (for the API's list) and the audit event `comment.posted` carrying the same text,
written in one transaction: the request's timeline (`reviews.conversation.timeline`) and the mail
about the comment (`reviews.notify`) read the event.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from ..audit import chain
from ..decisions.deciding import locked_or_refuse, stale_page_refusal
from ..errors import CommentTooLong, EmptyComment
from ..models import COMMENT_MAX, Comment, TransitionRequest

LATEST_COMMENTS = 3  # what `quorum status` and a request's summary show


@transaction.atomic
def comment_post(
    *, request_id: int, user: User, body: str, seen_decision: str | None = None
) -> Comment:
    """Posts `body` on the request as `user`. The row lock orders it among votes and decisions,
    so the timeline shows it where it happened."""
    body = body.strip()
    if not body:
        raise EmptyComment("Write something before posting a comment.")
    if len(body) > COMMENT_MAX:
        raise CommentTooLong(
            f"A comment is at most {COMMENT_MAX:,} characters; this one has {len(body):,}."
        )
    request = locked_or_refuse(request_id)
    stale_page_refusal(request, seen_decision)
    comment = Comment.objects.create(request=request, author=user, body=body)
    chain.record(
        "comment.posted",
        actor=user,
        request=request,
        details={"comment": comment.pk, "body": body},
    )
    return comment


def latest_comments(request: TransitionRequest, limit: int = LATEST_COMMENTS) -> list[Comment]:
    """The newest `limit` comments, oldest first."""
    newest = list(request.comments.select_related("author").order_by("-created_at", "-id")[:limit])
    return newest[::-1]
