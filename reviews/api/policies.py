"""Policies as their authors see them: `GET /policies/explain` says which policy would decide a
request and what it would need; `POST /policies/test` checks a policy file against a file of
cases. Neither creates anything."""

from __future__ import annotations

from ninja import Query, Router

from ..policy_tools import cases as policy_cases
from ..policy_tools.explanation import explain
from .auth import ApiRequest
from .policy_schemas import ExplainIn, ExplanationOut, PolicyTestIn, PolicyTestOut
from .schemas import READ_ERRORS, WRITE_ERRORS, Error

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


@router.post("/policies/test", response={200: PolicyTestOut, READ_ERRORS: Error}, tags=["policies"])
def test_policies(request: ApiRequest, body: PolicyTestIn):
    """Checks every case of `cases` against the policy file `policies`, with the code that opens
    requests (`quorum policy test`). Stores nothing, loads nothing, asks MLflow nothing: the
    answer is 200 with `passed`, each case's differences, or the `problems` of a malformed file
    with their places (then no case runs)."""
    try:
        results = policy_cases.run(policies=body.policies, cases=body.cases)
    except policy_cases.CasesInvalid as error:
        problems = [
            {"file": file, "place": problem.place, "message": problem.message}
            for file, problem in error.problems
        ]
        return {"passed": False, "problems": problems, "cases": []}
    cases = [result.as_json() for result in results]
    return {"passed": all(c["passed"] for c in cases), "problems": [], "cases": cases}
