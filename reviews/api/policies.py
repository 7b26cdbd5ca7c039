"""Policies as their authors see them: `GET /policies/explain` says which policy would decide a
request and what it would need, without creating anything."""

from __future__ import annotations

from ninja import Query, Router

from ..decisions.explanation import explain
from .auth import ApiRequest
from .policy_schemas import ExplainIn, ExplanationOut
from .schemas import WRITE_ERRORS, Error

router = Router()


@router.get(
    "/policies/explain",
    response={200: ExplanationOut, WRITE_ERRORS: Error},
    tags=["policies"],
)
def explain_policy(request: ApiRequest, query: Query[ExplainIn]):
    """Which policy would decide a request for `version` of `model` to reach `target` and why
    (the most specific match), the approvals it would need (escalations by the evidence
    included, each with its reason), each gate's verdict now, and whether rollback and break
    glass are available there and to whom. Computed by the functions that open a request;
    nothing is created. Refused like a request: 404 unknown model or version, 422 invalid
    target, `no_policy` or `ambiguous_policy`."""
    return explain(model=query.model, version=query.version, target=query.target, user=request.auth)
