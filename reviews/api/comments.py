"""A request's comments, remarks without a vote: list them, and post one."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Status

from ..conversation.comments import comment_post
from ..models import Comment as CommentRow
from .auth import ApiRequest
from .representation import paginate, request_or_404
from .schemas import LOOKUP_ERRORS, WRITE_ERRORS, CommentIn, CommentOut, CommentPage, Error, PageIn

router = Router()


def comment_out(comment: CommentRow) -> dict:
    return {
        "id": comment.pk,
        "author": comment.author.get_username(),
        "body": comment.body,
        "created_at": comment.created_at,
    }


@router.get(
    "/requests/{id}/comments",
    response={200: CommentPage, LOOKUP_ERRORS: Error},
    tags=["requests"],
)
def list_comments(request: HttpRequest, id: int, page: Query[PageIn]):  # noqa: A002
    """A request's comments (remarks without a vote), oldest first."""
    comments = request_or_404(id).comments.select_related("author").order_by("created_at", "id")
    return paginate(comments, page, lambda rows: [comment_out(c) for c in rows])


@router.post(
    "/requests/{id}/comments",
    response={201: CommentOut, WRITE_ERRORS: Error},
    tags=["requests"],
)
def post_comment(request: ApiRequest, id: int, body: CommentIn):  # noqa: A002
    """Comments on a request without voting, as the token's user. Anyone who may see the
    request may comment; the requester, its voters and its approvers are told by mail."""
    posted = comment_post(
        request_id=id, user=request.auth, body=body.body, seen_decision=body.seen_decision
    )
    return Status(201, comment_out(posted))
