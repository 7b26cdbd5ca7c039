"""POST /break-glass: move a version at once, without a quorum, ratified afterwards."""

from __future__ import annotations

from ninja import Router, Status

from ..emergency.break_glass import break_glass_move
from .auth import ApiRequest
from .representation import request_out_by_id
from .schemas import WRITE_ERRORS, BreakGlassIn, Error, RequestOut

router = Router()


@router.post(
    "/break-glass", response={201: RequestOut, WRITE_ERRORS | {429}: Error}, tags=["requests"]
)
def create_break_glass(request: ApiRequest, body: BreakGlassIn):
    """Moves `version` of `model` to `target` at once, without a quorum: for members of the
    policy's `break_glass.groups`, with a mandatory `reason`. The required groups are mailed at
    once and a ratification request follows the move; unratified within the policy's
    `ratify_within`, staff are alerted (and with `on_unratified: revert`, it is undone). Each user
    may break glass `QUORUM_BREAK_GLASS_PER_DAY` times in 24 hours (429 after that)."""
    moved = break_glass_move(
        model=body.model,
        version=body.version,
        target=body.target,
        user=request.auth,
        reason=body.reason,
    )
    return Status(201, request_out_by_id(moved.pk))
