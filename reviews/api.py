"""The REST API at /api/v1/: models, versions, transition requests and votes, as JSON.

Built with django-ninja, which routes, validates bodies and writes the OpenAPI schema
(/api/v1/openapi.json, interactive docs at /api/v1/docs). Endpoints are thin: they call
`reviews.services`, which checks permissions exactly as for the browser, and every refusal comes
back as `{"error": code, "detail": message}` with the status the refusal carries. Bad input is a
4xx, never a 500.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from django.db.models import Count, Max, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Field, NinjaAPI, Query, Schema, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from pydantic import AfterValidator

from registry.models import ModelVersion, RegisteredModel

from . import counting, services
from .api_auth import BearerToken, Unauthorized
from .errors import QuorumError, RequestNotFound, UnknownModel
from .links import request_url
from .models import Decision, TransitionRequest, Vote, VoteChoice

api = NinjaAPI(
    title="Quorum API",
    version="1",
    description="Request model promotions, follow their review, and vote. "
    "Authenticate with `Authorization: Bearer <token>` (`manage.py create_api_token USER`). "
    'Every error is `{"error": code, "detail": message}`.',
    auth=BearerToken(),
    urls_namespace="api-v1",
)


# -- input types ------------------------------------------------------------------------------


def _storable(value: str) -> str:
    # PostgreSQL refuses NUL in text and UTF-8 has no lone surrogates: say so as a 400 rather
    # than failing inside the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]


class PageIn(Schema):
    """limit/offset; offset is bounded so that no value a client sends overflows SQL."""

    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=2**31 - 1)


class RequestFilters(Schema):
    state: Literal[tuple(Decision.values)] | None = Field(  # type: ignore[valid-type]
        None, description="A decision: pending, approved, rejected, cancelled or expired."
    )
    model: Text | None = Field(None, description="A registered model's name.")


# -- output types -----------------------------------------------------------------------------


class Error(Schema):
    error: str = Field(description="A stable code, e.g. `duplicate_request`, `not_eligible`.")
    detail: str = Field(description="What went wrong, in words a person can act on.")


class ModelOut(Schema):
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    versions: int = Field(description="Versions that are not deleted.")
    latest_version: int | None


class VersionOut(Schema):
    model: str
    version: int
    stage: str
    aliases: list[str]
    status: str
    run_id: str
    source: str
    description: str
    tags: dict[str, str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    creation_timestamp: int | None = Field(description="MLflow's, in milliseconds.")
    last_updated_timestamp: int | None


class Requirement(Schema):
    group: str
    needed: int
    approvers: list[str] = Field(
        description="The people counted for this group (stale approvals excluded). A person "
        "counts for one group at most, so no name appears under two groups."
    )


class VoteOut(Schema):
    user: str
    decision: str
    comment: str
    groups: list[str] = Field(
        description="The required groups the voter was in when voting: those the vote may count "
        "for."
    )
    counted_for: str | None = Field(
        description="The one required group this approval counts for; null for a rejection, a "
        "stale approval, or an approval no group needs any more."
    )
    stale: bool = Field(
        description="The evidence changed after this approval: it no longer counts, and its "
        "voter may vote again."
    )
    stale_reason: str
    created_at: datetime


class RequestOut(Schema):
    id: int
    model: str
    version: int
    target: str
    requester: str
    comment: str
    decision: str = Field(description="pending, approved, rejected, cancelled or expired.")
    decision_reason: str
    decided_by: str | None = Field(description="A username; null when the policy decided.")
    decided_at: datetime | None
    execution: str | None = Field(
        description="After approval: queued, running, done or failed; null before."
    )
    execution_error: str
    execution_attempts: int
    executed_at: datetime | None
    gates: list[dict[str, Any]] = Field(description="Gate results as evaluated at creation.")
    requirements: list[Requirement]
    votes: list[VoteOut]
    created_at: datetime
    expires_at: datetime
    url: str = Field(description="The request's page in the dashboard.")


class ModelPage(Schema):
    count: int
    items: list[ModelOut]


class VersionPage(Schema):
    count: int
    items: list[VersionOut]


class RequestPage(Schema):
    count: int
    items: list[RequestOut]


class RequestIn(Schema):
    model: Text
    version: int = Field(description="The version number.")
    target: Text = Field(description="A stage (Staging, Production, Archived) or @alias.")
    comment: Text = ""


class VoteIn(Schema):
    decision: Literal["approve", "reject"]
    comment: Text = Field("", description="Required when rejecting.")


# The refusals each kind of endpoint can answer with, for the schema and the docs.
READ_ERRORS = frozenset({400, 401})
LOOKUP_ERRORS = frozenset({400, 401, 404})
WRITE_ERRORS = frozenset({400, 401, 403, 404, 409, 422})


# -- representation ---------------------------------------------------------------------------


# What `request_out` reads and nothing more: building model instances and decoding JSON columns
# (the version's params and metrics, the metric snapshots) is most of a list's cost otherwise.
REQUEST_COLUMNS = (
    *(
        f.name
        for f in TransitionRequest._meta.concrete_fields
        if f.name not in ("candidate_metrics", "baseline_metrics")
    ),
    "version__version",
    "version__model__name",
    "requester__username",
    "decided_by__username",
)
VOTE_COLUMNS = (
    "request",
    "decision",
    "comment",
    "groups",
    "stale",
    "stale_reason",
    "created_at",
    "user__username",
)


def requests_with_details():
    """Requests with everything their representation reads, in a fixed number of queries."""
    votes = Vote.objects.select_related("user").only(*VOTE_COLUMNS)
    return (
        TransitionRequest.objects.select_related("version__model", "requester", "decided_by")
        .only(*REQUEST_COLUMNS)
        .prefetch_related(Prefetch("votes", queryset=votes))
    )


def model_out(model: RegisteredModel) -> dict:
    return {
        "name": model.name,
        "description": model.description,
        "tags": model.tags,
        "aliases": model.aliases,
        "versions": model.version_count,
        "latest_version": model.latest,
    }


def version_out(model: RegisteredModel, version: ModelVersion) -> dict:
    return {
        "model": model.name,
        "version": version.version,
        "stage": version.stage,
        "aliases": version.aliases,
        "status": version.status,
        "run_id": version.run_id,
        "source": version.source,
        "description": version.description,
        "tags": version.tags,
        "metrics": version.metrics,
        "params": version.params,
        "creation_timestamp": version.creation_timestamp,
        "last_updated_timestamp": version.last_updated_timestamp,
    }


def request_out(request: TransitionRequest) -> dict:
    votes = list(request.votes.all())
    count = counting.tally(request, votes)
    return {
        "id": request.pk,
        "model": request.version.model.name,
        "version": request.version.version,
        "target": request.target,
        "requester": request.requester.get_username(),
        "comment": request.comment,
        "decision": request.decision,
        "decision_reason": request.decision_reason,
        "decided_by": request.decided_by.get_username() if request.decided_by else None,
        "decided_at": request.decided_at,
        "execution": request.execution or None,
        "execution_error": request.execution_error,
        "execution_attempts": request.execution_attempts,
        "executed_at": request.executed_at,
        "gates": request.gate_results,
        "requirements": [
            {"group": p.group, "needed": p.needed, "approvers": list(p.approvers)}
            for p in count.progress
        ],
        "votes": [
            {
                "user": v.user.get_username(),
                "decision": v.decision,
                "comment": v.comment,
                "groups": v.groups,
                "counted_for": count.counted_for.get(v.pk),
                "stale": v.stale,
                "stale_reason": v.stale_reason,
                "created_at": v.created_at,
            }
            for v in votes
        ],
        "created_at": request.created_at,
        "expires_at": request.expires_at,
        "url": request_url(request.pk),
    }


def _page(queryset, page: PageIn, represent) -> dict:
    """One page of `queryset`; only that page is loaded and represented."""
    rows = queryset[page.offset : page.offset + page.limit]
    return {"count": queryset.count(), "items": [represent(row) for row in rows]}


def _request(pk: int) -> dict:
    request = requests_with_details().filter(pk=pk).first()
    if request is None:
        raise RequestNotFound(f"There is no request #{pk}.")
    return request_out(request)


# -- endpoints --------------------------------------------------------------------------------


@api.get("/models", response={200: ModelPage, READ_ERRORS: Error}, tags=["registry"])
def list_models(request: HttpRequest, page: Query[PageIn]):
    """Registered models in the mirror, by name."""
    live = Q(versions__deleted=False)
    models = (
        RegisteredModel.objects.live()
        .annotate(
            version_count=Count("versions", filter=live),
            latest=Max("versions__version", filter=live),
        )
        .order_by("name")  # explicit: pages must not shuffle
    )
    return _page(models, page, model_out)


@api.get(
    "/models/{name}/versions",
    response={200: VersionPage, LOOKUP_ERRORS: Error},
    tags=["registry"],
)
def list_versions(request: HttpRequest, name: Text, page: Query[PageIn]):
    """A model's versions, newest first: stage, aliases, run metrics and params."""
    model = RegisteredModel.objects.live().filter(name=name).first()
    if model is None:
        raise UnknownModel(f"There is no registered model named {name!r}.")
    versions = ModelVersion.objects.live().filter(model=model).order_by("-version")
    return _page(versions, page, lambda v: version_out(model, v))


@api.post("/requests", response={201: RequestOut, WRITE_ERRORS: Error}, tags=["requests"])
def create_request(request: HttpRequest, body: RequestIn):
    """Asks for `version` of `model` to reach `target`. Gates are evaluated at once: the request
    may come back already rejected (a required gate failed) or approved (auto-approve gates)."""
    created = services.request_create(
        model=body.model,
        version=body.version,
        target=body.target,
        requester=request.auth,
        comment=body.comment,
    )
    return Status(201, _request(created.pk))


@api.get("/requests", response={200: RequestPage, READ_ERRORS: Error}, tags=["requests"])
def list_requests(request: HttpRequest, filters: Query[RequestFilters], page: Query[PageIn]):
    """Requests, newest first, optionally in one decision state and of one model."""
    requests = requests_with_details()
    if filters.state:
        requests = requests.filter(decision=filters.state)
    if filters.model:
        requests = requests.filter(version__model__name=filters.model)
    return _page(requests, page, request_out)


@api.get("/requests/{id}", response={200: RequestOut, LOOKUP_ERRORS: Error}, tags=["requests"])
def get_request(request: HttpRequest, id: int):  # noqa: A002 - the path's name, in the schema
    """One request: its decision, execution, gates and who has signed."""
    return _request(id)


@api.post(
    "/requests/{id}/votes",
    response={201: RequestOut, WRITE_ERRORS: Error},
    tags=["requests"],
)
def cast_vote(request: HttpRequest, id: int, body: VoteIn):  # noqa: A002
    """Approves or rejects as the token's user; answers with the request after the vote."""
    services.vote_cast(
        request_id=id,
        user=request.auth,
        decision=VoteChoice(body.decision),
        comment=body.comment,
    )
    return Status(201, _request(id))


@api.post(
    "/requests/{id}/cancel",
    response={200: RequestOut, WRITE_ERRORS: Error},
    tags=["requests"],
)
def cancel_request(request: HttpRequest, id: int):  # noqa: A002
    """Withdraws a pending request (its requester, or an admin)."""
    services.request_cancel(request_id=id, user=request.auth)
    return _request(id)


# -- errors -----------------------------------------------------------------------------------

HTTP_CODES = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    429: "throttled",
}


def _error(request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse:
    return api.create_response(request, {"error": code, "detail": detail}, status=status)


@api.exception_handler(QuorumError)
def _quorum_error(request: HttpRequest, exc: QuorumError) -> HttpResponse:
    return _error(request, exc.status, exc.code, str(exc))


@api.exception_handler(Unauthorized)
def _unauthorized(request: HttpRequest, exc: Unauthorized) -> HttpResponse:
    response = _error(request, exc.status, exc.code, str(exc))
    response["WWW-Authenticate"] = 'Bearer realm="quorum"'
    return response


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    # ninja answers 422 with pydantic's list; the API promises 400 and one readable sentence.
    problems = []
    for item in exc.errors:
        place = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{place}: {item.get('msg', 'invalid')}" if place else item.get("msg"))
    return _error(request, 400, "invalid_request", "; ".join(problems) or "Invalid request.")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, HTTP_CODES.get(exc.status_code, "error"), str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "Not found.")
