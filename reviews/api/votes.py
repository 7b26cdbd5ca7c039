"""POST /requests/{id}/votes: approve or reject a request."""

from __future__ import annotations

from ninja import Router, Status

from ..decisions import voting
from ..models import VoteChoice
from .auth import ApiRequest
from .representation import request_out_by_id
from .schemas import WRITE_ERRORS, Error, RequestOut, VoteIn

router = Router()


@router.post(
    "/requests/{id}/votes",
    response={201: RequestOut, WRITE_ERRORS: Error},
    tags=["requests"],
)
def cast_vote(request: ApiRequest, id: int, body: VoteIn):  # noqa: A002
    """Approves or rejects as the token's user; answers with the request after the vote."""
    voting.vote_cast(
        request_id=id,
        user=request.auth,
        decision=VoteChoice(body.decision),
        comment=body.comment,
    )
    return Status(201, request_out_by_id(id))
