"""POST /rollbacks: ask for a target to go back to a version that held it before; GET
/rollbacks/preview: what that would take, sized as the request will be."""

from __future__ import annotations

from ninja import Router, Status

from ..decisions import gates
from ..emergency.rollback import rollback_preview, rollback_request_create
from .auth import ApiRequest
from .representation import request_out_by_id
from .schemas import WRITE_ERRORS, Error, Name, RequestOut, RollbackIn, RollbackPreviewOut

router = Router()


@router.get(
    "/rollbacks/preview", response={200: RollbackPreviewOut, WRITE_ERRORS: Error}, tags=["requests"]
)
def preview_rollback(request: ApiRequest, model: Name, target: Name, to_version: str = ""):
    """What `POST /rollbacks` with these values would open, changing nothing: the version it
    puts back and the sign-offs it needs (the policy's `rollback:` rules, the normal `require`
    without them, a protected target the version leaves included), from the same function the
    request is sized with. Refused as the request would be."""
    found = rollback_preview(model=model, target=target, to_version=to_version or None)
    sized = found.sizing
    at_once = "rejected" if sized.failures else "approved" if sized.approved_at_once else None
    return {
        "model": found.model,
        "target": found.target,
        "version": found.version,
        "requirements": sized.require,
        "needs": sized.words,
        "decided_at_once": at_once,
        "escalation": sized.escalations,
        "leaves": sized.leaves,
        "gates": gates.with_verdicts([r.as_json() for r in sized.results]),
    }


@router.post("/rollbacks", response={201: RequestOut, WRITE_ERRORS: Error}, tags=["requests"])
def create_rollback(request: ApiRequest, body: RollbackIn):
    """Asks for `target` of `model` to go back to a version that held it before (default: its
    previous holder): a request of kind `rollback`, decided by the policy's `rollback:` rules
    (its normal `require` and required gates without them; escalations only with `rollback:
    {escalate: true}`, auto-approval only with `rollback: {gates: true}`); a version that holds
    another protected target needs that target's sign-offs too. `GET /rollbacks/preview` says
    what it will take. Carried out like any request once approved."""
    created = rollback_request_create(
        model=body.model,
        target=body.target,
        to_version=body.to_version,
        requester=request.auth,
        comment=body.comment,
    )
    return Status(201, request_out_by_id(created.pk))
