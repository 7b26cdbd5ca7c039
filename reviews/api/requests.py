"""Transition requests: open one (POST /requests), list them, read one, cancel it, and read its
timeline. Rollbacks and break-glass moves, votes and comments have routers of their own."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Status

from ..conversation import timeline
from ..decisions import deciding, opening
from ..models import TransitionRequest
from .auth import ApiRequest
from .representation import (
    paginate,
    request_or_404,
    request_out,
    request_out_by_id,
    request_summaries,
    requests_with_details,
)
from .schemas import (
    LOOKUP_ERRORS,
    READ_ERRORS,
    WRITE_ERRORS,
    CancelIn,
    Error,
    RequestFields,
    RequestFilters,
    RequestIn,
    RequestList,
    RequestOut,
    RequestPageIn,
    TimelineOut,
)

router = Router()


@router.post("/requests", response={201: RequestOut, WRITE_ERRORS: Error}, tags=["requests"])
def create_request(request: ApiRequest, body: RequestIn):
    """Asks for `version` of `model` to reach `target`. Gates are evaluated at once: the request
    may come back already rejected (a required gate failed) or approved (auto-approve gates)."""
    created = opening.request_create(
        model=body.model,
        version=body.version,
        target=body.target,
        requester=request.auth,
        comment=body.comment,
        rejection_answer=body.rejection_answer,
    )
    return Status(201, request_out_by_id(created.pk))


@router.get("/requests", response={200: RequestList, READ_ERRORS: Error}, tags=["requests"])
def list_requests(
    request: HttpRequest,
    filters: Query[RequestFilters],
    page: Query[RequestPageIn],
    view: Query[RequestFields],
):
    """Requests, newest first, optionally in one decision state and of one model: each one's
    state and approvals so far (`fields=full`: everything `GET /requests/{id}` answers)."""
    full = view.fields == "full"
    requests = requests_with_details() if full else TransitionRequest.objects.all()
    if filters.state:
        requests = requests.filter(decision=filters.state)
    if filters.model:
        requests = requests.filter(version__model__name=filters.model)
    if full:
        return {
            "fields": "full",
            **paginate(requests, page, lambda rows: [request_out(r) for r in rows]),
        }
    return {"fields": "summary", **paginate(requests, page, request_summaries)}


@router.get("/requests/{id}", response={200: RequestOut, LOOKUP_ERRORS: Error}, tags=["requests"])
def get_request(request: HttpRequest, id: int):  # noqa: A002 - the path's name, in the schema
    """One request: its decision, execution, gates and who has signed."""
    return request_out_by_id(id)


@router.post(
    "/requests/{id}/cancel",
    response={200: RequestOut, WRITE_ERRORS: Error},
    tags=["requests"],
)
def cancel_request(request: ApiRequest, id: int, body: CancelIn | None = None):  # noqa: A002
    """Withdraws a pending request (its requester, or an admin), with an optional `reason`."""
    deciding.request_cancel(request_id=id, user=request.auth, reason=body.reason if body else "")
    return request_out_by_id(id)


@router.get(
    "/requests/{id}/timeline",
    response={200: TimelineOut, LOOKUP_ERRORS: Error},
    tags=["requests"],
)
def get_timeline(request: HttpRequest, id: int):  # noqa: A002
    """What happened to a request, oldest first, read from the audit log: creation and gates,
    votes, comments, dismissed approvals, re-evaluations, the decision, transition attempts, and
    changes made in MLflow outside Quorum to the same model and target."""
    return {"items": [entry.as_json() for entry in timeline.timeline(request_or_404(id))]}
