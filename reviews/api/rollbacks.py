"""POST /rollbacks: ask for a target to go back to a version that held it before."""

from __future__ import annotations

from ninja import Router, Status

from ..emergency.rollback import rollback_request_create
from .auth import ApiRequest
from .representation import request_out_by_id
from .schemas import WRITE_ERRORS, Error, RequestOut, RollbackIn

router = Router()


@router.post("/rollbacks", response={201: RequestOut, WRITE_ERRORS: Error}, tags=["requests"])
def create_rollback(request: ApiRequest, body: RollbackIn):
    """Asks for `target` of `model` to go back to a version that held it before (default: its
    previous holder): a request of kind `rollback`, decided by the policy's `rollback:` section
    when it has one, else by its normal rules. Carried out like any request once approved."""
    created = rollback_request_create(
        model=body.model,
        target=body.target,
        to_version=body.to_version,
        requester=request.auth,
        comment=body.comment,
    )
    return Status(201, request_out_by_id(created.pk))
