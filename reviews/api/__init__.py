"""The REST API at /api/v1/: models, versions, transition requests and votes, as JSON.

Built with django-ninja, which routes, validates bodies and writes the OpenAPI schema
(/api/v1/openapi.json, interactive docs at /api/v1/docs). Endpoints are thin: they call
`reviews.services`, which checks permissions exactly as for the browser, and every refusal comes
back as `{"error": code, "detail": message}` with the status the refusal carries. Bad input is a
4xx, never a 500: bodies keep the forms' limits (`COMMENT_MAX`), versions are whole numbers, unknown
fields are refused, and `reviews.api.errors` answers unknown routes and oversized bodies in the
same shape.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict

from django.db.models import Count, Max, Prefetch, Q
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, NinjaAPI, Query, Schema, Status
from pydantic import AfterValidator, BeforeValidator, ConfigDict

from quorum_cli import attestation as proof
from registry.models import ModelVersion, RegisteredModel
from registry.targets import Target

from .. import attestation, conversation, counting, gates, services, standing, timeline
from ..break_glass import break_glass_move
from ..errors import InvalidTarget, RequestNotFound, UnknownModel
from ..holder_history import holder_history
from ..links import request_url
from ..models import COMMENT_MAX, Decision, TransitionRequest, Vote, VoteChoice
from ..models import Comment as CommentRow
from ..policy_spec import target_problem
from ..rollback import rollback_request_create
from . import errors as api_errors
from .auth import ApiRequest, BearerToken

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

api = NinjaAPI(
    title="Quorum API",
    version="1",
    description="Request model promotions, follow their review, and vote. "
    "Authenticate with `Authorization: Bearer <token>`: a Quorum API token "
    "(`manage.py create_api_token USER`), or a CI system's workload identity token (a JWT from "
    "an issuer in QUORUM_CI_ISSUERS, acting as the service user its claims map to). "
    'Every error is `{"error": code, "detail": message}`. '
    "Every version Quorum promotes carries a signed approval proof (an in-toto Statement in a "
    "DSSE envelope, Ed25519) in its MLflow tag `quorum.attestation.<target>`; `GET /keys` "
    "(public) lists the keys that verify it, and `quorum verify` checks it.",
    auth=BearerToken(),
    urls_namespace="api-v1",
)
api_errors.install(api)


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
# Longer than any model name or target Quorum stores, and short enough that a refusal that
# quotes one stays short.
Name = Annotated[str, Field(max_length=1000), AfterValidator(_storable)]
Comment = Annotated[str, Field(max_length=COMMENT_MAX), AfterValidator(_storable)]
DIGITS = re.compile(r"[0-9]{1,20}")


def _whole_number(value: Any) -> Any:
    # JSON's true is not version 1 (bool is an int in Python), nor is 2.0 or 2.5 a version. The
    # digits as text are taken: the `quorum` CLI sends the version as it was typed.
    if isinstance(value, bool | float):
        raise ValueError("must be a whole number, like 3")
    if isinstance(value, str):
        if not DIGITS.fullmatch(value):
            raise ValueError("must be a whole number, like 3")
        return int(value)
    return value


VersionNumber = Annotated[int, BeforeValidator(_whole_number)]


class PageIn(Schema):
    """limit/offset; offset is bounded so that no value a client sends overflows SQL."""

    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=2**31 - 1)


class RequestPageIn(PageIn):
    # The inbox's page size: lists of requests are polled, and each item is counted afresh.
    limit: int = Field(20, ge=1, le=500)


class RequestFilters(Schema):
    state: Literal[tuple(Decision.values)] | None = Field(  # type: ignore[valid-type]
        None, description="A decision: pending, approved, rejected, cancelled or expired."
    )
    model: Name | None = Field(None, description="A registered model's name.")


class RequestFields(Schema):
    fields: Literal["summary", "full"] = Field(
        "summary",
        description="`summary`: each request's state and approvals so far; `full`: what "
        "`GET /requests/{id}` answers (gates, votes, comments, reasons) for every item.",
    )


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


class RequestSummary(Schema):
    """A request in a list: where it stands. `GET /requests/{id}` has the rest."""

    id: int
    model: str
    version: int
    target: str
    requester: str
    decision: str = Field(
        description="The stored decision: pending, approved, rejected, cancelled or expired. A "
        "pending request past `expires_at` stays pending here until Quorum's reconciler expires "
        "it (within QUORUM_RECONCILE_INTERVAL); `status` says expired at once."
    )
    execution: str | None = Field(
        description="After approval: queued, running, done or failed; null before."
    )
    status: str = Field(
        description="Where the request stands now, computed from the facts (what the dashboard's "
        "badge shows): pending, expired, rejected, cancelled, or after approval the transition's "
        "queued, running, done or failed. Unlike `decision` it says expired as soon as "
        "`expires_at` passes (no vote can land after it)."
    )
    requirements: list[Requirement] = Field(
        description="Per required group: approvals needed and who is counted so far."
    )
    approved_by: list[str] = Field(
        description="The people whose approvals count (each once, stale ones excluded), in the "
        "order they voted: for an approved request, the quorum that approved it; empty when its "
        "gates approved it."
    )
    created_at: datetime
    expires_at: datetime
    url: str = Field(description="The request's page in the dashboard.")


class RequestOut(RequestSummary):
    comment: str
    rejection_answer: str = Field(
        description="The requester's answer to an earlier rejection of this version for this "
        "target; empty when there was none."
    )
    decision_reason: str
    decided_by: str | None = Field(description="A username; null when the policy decided.")
    decided_at: datetime | None
    execution_error: str
    execution_attempts: int
    executed_at: datetime | None
    attestation: str | None = Field(
        description="The signed approval proof on the version once it moved (MLflow tag "
        "`quorum.attestation.<target>`): pending, written or failed; null before."
    )
    gates: list[dict[str, Any]] = Field(
        description="Gate results as last evaluated, each with its `verdict`: passed, failed (a "
        "required gate: it rejects), or needs_sign_off (an auto-approve gate that did not fire: "
        "people sign off instead)."
    )
    escalation: list[dict[str, str]] = Field(
        default=[],
        description="The policy's evidence rules that changed the requirements: "
        "[{when, reason}] (`when` is signature_breaking, ..., or no_change).",
    )
    votes: list[VoteOut]
    kind: str = Field(
        "promotion",
        description="`promotion`; `rollback` (puts back a version that held the target); "
        "`break_glass` (carried out at once, ratified afterwards); `ratification` (the quorum's "
        "after-the-fact approval of a break-glass move).",
    )
    undoes: int | None = Field(None, description="A rollback: the request it undoes, if any.")
    ratifies: int | None = Field(None, description="A ratification: the break-glass request.")


class CommentOut(Schema):
    id: int
    author: str
    body: str
    created_at: datetime


class CommentPage(Schema):
    count: int
    items: list[CommentOut]


class TimelineEntryOut(Schema):
    sequence: int = Field(description="The audit event's sequence number.")
    at: datetime
    actor: str = Field(description='A username, or "policy", "system", "mlflow".')
    action: str = Field(description="The audit action, e.g. `vote.cast`, `comment.posted`.")
    kind: str = Field(description="What sort of entry: created, vote, comment, stale, ...")
    title: str
    text: str = Field(description="A comment, a vote's comment, a reason or an error.")
    items: list[str] = Field(description="Gate results, when the entry has them.")


class TimelineOut(Schema):
    items: list[TimelineEntryOut]


class ModelPage(Schema):
    count: int
    items: list[ModelOut]


class VersionPage(Schema):
    count: int
    items: list[VersionOut]


class RequestSummaryPage(Schema):
    fields: Literal["summary"] = Field(description="The items' representation.")
    count: int
    items: list[RequestSummary]


class RequestPage(Schema):
    fields: Literal["full"] = Field(description="The items' representation.")
    count: int
    items: list[RequestOut]


class PublicKeyOut(Schema):
    keyid: str = Field(
        description="SHA-256 of the key's canonical JSON form (securesystemslib's key id); the "
        "`keyid` of the envelope's signature."
    )
    keytype: Literal["ed25519"]
    scheme: Literal["ed25519"]
    status: Literal["current", "previous"] = Field(
        description="`current` signs new proofs; `previous` is retired, and the proofs it "
        "signed still verify."
    )
    public_key_pem: str = Field(description="The public key, PEM (SubjectPublicKeyInfo).")


class KeysOut(Schema):
    keys: list[PublicKeyOut]
    payload_type: str = Field(description="The DSSE envelope's payloadType.")
    predicate_type: str = Field(description="The in-toto Statement's predicateType.")
    tag_prefix: str = Field(
        description="Proofs are the version tags `<prefix><Stage>` and `<prefix>alias.<alias>`."
    )


# Which of the two the answer is, told by its `fields`.
RequestList = Annotated[RequestSummaryPage | RequestPage, Field(discriminator="fields")]


class RequestIn(Schema):
    # A misspelt field is refused, not dropped: a comment sent as "coment" would be lost.
    model_config = ConfigDict(extra="forbid")

    model: Name
    version: VersionNumber = Field(description="The version number.")
    target: Name = Field(description="A stage (Staging, Production, Archived) or @alias.")
    comment: Comment = Field("", description=f"At most {COMMENT_MAX:,} characters.")
    rejection_answer: Comment = Field(
        "",
        description="Required when this version was rejected for this target before (else 422 "
        "`answer_required`, quoting the rejection): what changed since.",
    )


class CommentIn(Schema):
    model_config = ConfigDict(extra="forbid")

    body: Comment = Field(description=f"At most {COMMENT_MAX:,} characters; not blank.")
    seen_decision: Literal[tuple(Decision.values)] | None = Field(  # type: ignore[valid-type]
        None,
        description="The decision state the client last saw: when the request has moved on "
        "since, the comment is refused (409 `page_stale`) rather than posted.",
    )


class CancelIn(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: Comment = Field("", description="Why; shown in the timeline and the mails.")


class RollbackIn(Schema):
    model_config = ConfigDict(extra="forbid")

    model: Name
    target: Name = Field(description="A stage (Production, Staging) or @alias.")
    to_version: VersionNumber | None = Field(
        None,
        description="The version to put back; it must have held the target before. "
        "Default: the target's previous holder.",
    )
    comment: Comment = Field("", description=f"At most {COMMENT_MAX:,} characters.")


class BreakGlassIn(Schema):
    model_config = ConfigDict(extra="forbid")

    model: Name
    version: VersionNumber = Field(description="The version number.")
    target: Name = Field(description="A stage (Staging, Production) or @alias.")
    reason: Comment = Field(description="Why, in words: required, audited and mailed.")


class VoteIn(Schema):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: Comment = Field(
        "", description=f"Required when rejecting; at most {COMMENT_MAX:,} characters."
    )


class TimelineIn(Schema):
    target: Name | None = Field(
        None, description="A stage (`Production`) or an alias (`@champion`); default: every target."
    )
    at: datetime | None = Field(
        None,
        description="A time (ISO 8601; UTC when no offset is given): `held_by` then names the "
        "versions that held `target` at that time.",
    )


class HowOut(Schema):
    kind: str = Field(
        description="`promotion`, `rollback`, `break_glass`, `ratification` (a Quorum request), "
        "`out_of_band` (made in MLflow directly), `first_seen` (already there when Quorum "
        "started mirroring) or `unclassified`."
    )
    request: int | None
    requester: str | None
    approvers: list[str]


class HoldingOut(Schema):
    target: str
    version: int
    start: datetime = Field(description="When Quorum's sync saw the version arrive.")
    start_seen: bool = Field(
        description="False: it was already there when first seen; how long before is unknown."
    )
    end: datetime | None = Field(description="When it left; null: it holds the target now.")
    end_reason: Literal["moved", "deleted"] | None
    replaced_by: list[int]
    began: HowOut
    ended_by: HowOut | None


class HoldersTimelineOut(Schema):
    model: str
    mirrored_since: datetime | None = Field(
        description="Quorum's first observation of the model; before it, nothing is known."
    )
    target: str | None
    at: datetime | None
    held_by: list[int] | None = Field(
        description="With `at` and `target`: the versions holding `target` then (empty: none); "
        "null when `at` is before `mirrored_since` (unknown) or no `at` was given."
    )
    holdings: list[HoldingOut]


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
# What a summary reads: plain rows, no model instances, nothing of the gates or comments.
SUMMARY_COLUMNS = (
    "id",
    "version__model__name",
    "version__version",
    "target",
    "requester__username",
    "decision",
    "execution",
    "policy_snapshot",
    "created_at",
    "expires_at",
)
COUNTED_VOTE_COLUMNS = ("request", "decision", "groups", "stale", "created_at", "user__username")


def requests_with_details():
    """Requests with everything their representation reads, in a fixed number of queries."""
    votes = Vote.objects.select_related("user").only(*VOTE_COLUMNS)
    return (
        TransitionRequest.objects.select_related("version__model", "requester", "decided_by")
        .only(*REQUEST_COLUMNS)
        .prefetch_related(Prefetch("votes", queryset=votes))
    )


class VersionCounts(TypedDict):
    """What `list_models` annotates each model with."""

    version_count: int
    latest: int | None


def model_out(model: WithAnnotations[RegisteredModel, VersionCounts]) -> dict:
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


def requirements_out(count: counting.Tally) -> list[dict]:
    return [
        {"group": p.group, "needed": p.needed, "approvers": list(p.approvers)}
        for p in count.progress
    ]


def request_summaries(requests) -> list[dict]:
    """`requests` (a page of them) as summaries, in two queries: the rows, and their votes."""
    rows = list(requests.values(*SUMMARY_COLUMNS))
    votes = defaultdict(list)
    counted = Vote.objects.filter(request__in=[row["id"] for row in rows])
    for vote in counted.select_related("user").only(*COUNTED_VOTE_COLUMNS):
        votes[vote.request_id].append(vote)
    return [
        summary_out(row, counting.tally_of(row["policy_snapshot"], votes[row["id"]]))
        for row in rows
    ]


def summary_out(row: dict, count: counting.Tally) -> dict:
    return {
        "id": row["id"],
        "model": row["version__model__name"],
        "version": row["version__version"],
        "target": row["target"],
        "requester": row["requester__username"],
        "decision": row["decision"],
        "execution": row["execution"] or None,
        "status": standing.status_of(row["decision"], row["execution"], row["expires_at"]),
        "requirements": requirements_out(count),
        "approved_by": list(count.approvers),
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "url": request_url(row["id"]),
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
        "rejection_answer": request.rejection_answer,
        "decision": request.decision,
        "decision_reason": request.decision_reason,
        "decided_by": request.decided_by.get_username() if request.decided_by else None,
        "decided_at": request.decided_at,
        "execution": request.execution or None,
        "status": standing.status(request),
        "execution_error": request.execution_error,
        "execution_attempts": request.execution_attempts,
        "executed_at": request.executed_at,
        "attestation": request.attestation or None,
        "gates": gates.with_verdicts(request.gate_results),
        "escalation": request.policy_snapshot.get("escalation", {}).get("applied", []),
        "requirements": requirements_out(count),
        "approved_by": list(count.approvers),
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
        "kind": request.kind,
        "undoes": request.undoes_id,
        "ratifies": request.ratifies_id,
    }


def _page(queryset, page: PageIn, represent: Callable[[Any], list[dict]]) -> dict:
    """One page of `queryset`; only that page is loaded and represented (`represent` turns the
    page's rows into its items)."""
    rows = queryset[page.offset : page.offset + page.limit]
    return {"count": queryset.count(), "items": represent(rows)}


def _request(pk: int) -> dict:
    request = requests_with_details().filter(pk=pk).first()
    if request is None:
        raise RequestNotFound(f"There is no request #{pk}.")
    return request_out(request)


# -- endpoints --------------------------------------------------------------------------------


@api.get("/keys", auth=None, response={200: KeysOut, 503: Error}, tags=["attestations"])
def list_keys(request: HttpRequest):
    """The public keys that verify the approval proofs on promoted versions. Public: no token.

    Save the answer as a file for `quorum verify --key FILE`, or let `quorum verify --server URL`
    fetch it."""
    return {
        "keys": [key.as_json() for key in attestation.published_keys()],
        "payload_type": proof.PAYLOAD_TYPE,
        "predicate_type": proof.PREDICATE_TYPE,
        "tag_prefix": proof.TAG_PREFIX,
    }


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
    return _page(models, page, lambda rows: [model_out(m) for m in rows])


@api.get(
    "/models/{name}/versions",
    response={200: VersionPage, LOOKUP_ERRORS: Error},
    tags=["registry"],
)
def list_versions(request: HttpRequest, name: Name, page: Query[PageIn]):
    """A model's versions, newest first: stage, aliases, run metrics and params."""
    model = RegisteredModel.objects.live().filter(name=name).first()
    if model is None:
        raise UnknownModel(f"There is no registered model named {name!r}.")
    versions = ModelVersion.objects.live().filter(model=model).order_by("-version")
    return _page(versions, page, lambda rows: [version_out(model, v) for v in rows])


@api.get(
    "/models/{name}/timeline",
    response={200: HoldersTimelineOut, LOOKUP_ERRORS | {422}: Error},
    tags=["registry"],
)
def model_timeline(request: HttpRequest, name: Name, query: Query[TimelineIn]):
    """Who held each stage and alias of the model from when to when, and how each holding began,
    from the mirror's recorded changes. With `target` and `at`: what held `target` at time `at`
    (`held_by`; null when `at` is before Quorum started mirroring the model: unknown)."""
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise UnknownModel(f"There is no registered model named {name!r}.")
    target = None
    if query.target is not None:
        if problem := target_problem(query.target):
            raise InvalidTarget(f"Target {problem}.")
        target = str(Target.parse(query.target))
    at = query.at
    if at is not None and timezone.is_naive(at):
        at = timezone.make_aware(at, UTC)
    history = holder_history(model)
    entries = history.of(target) if target else history.entries
    return {
        "model": model.name,
        "mirrored_since": history.timeline.mirrored_since,
        "target": target,
        "at": at,
        "held_by": history.held_at(target, at) if target and at else None,
        "holdings": [entry.as_json() for entry in entries],
    }


@api.post("/requests", response={201: RequestOut, WRITE_ERRORS: Error}, tags=["requests"])
def create_request(request: ApiRequest, body: RequestIn):
    """Asks for `version` of `model` to reach `target`. Gates are evaluated at once: the request
    may come back already rejected (a required gate failed) or approved (auto-approve gates)."""
    created = services.request_create(
        model=body.model,
        version=body.version,
        target=body.target,
        requester=request.auth,
        comment=body.comment,
        rejection_answer=body.rejection_answer,
    )
    return Status(201, _request(created.pk))


@api.post("/rollbacks", response={201: RequestOut, WRITE_ERRORS: Error}, tags=["requests"])
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
    return Status(201, _request(created.pk))


@api.post(
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
    return Status(201, _request(moved.pk))


@api.get("/requests", response={200: RequestList, READ_ERRORS: Error}, tags=["requests"])
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
            **_page(requests, page, lambda rows: [request_out(r) for r in rows]),
        }
    return {"fields": "summary", **_page(requests, page, request_summaries)}


@api.get("/requests/{id}", response={200: RequestOut, LOOKUP_ERRORS: Error}, tags=["requests"])
def get_request(request: HttpRequest, id: int):  # noqa: A002 - the path's name, in the schema
    """One request: its decision, execution, gates and who has signed."""
    return _request(id)


@api.post(
    "/requests/{id}/votes",
    response={201: RequestOut, WRITE_ERRORS: Error},
    tags=["requests"],
)
def cast_vote(request: ApiRequest, id: int, body: VoteIn):  # noqa: A002
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
def cancel_request(request: ApiRequest, id: int, body: CancelIn | None = None):  # noqa: A002
    """Withdraws a pending request (its requester, or an admin), with an optional `reason`."""
    services.request_cancel(request_id=id, user=request.auth, reason=body.reason if body else "")
    return _request(id)


def comment_out(comment: CommentRow) -> dict:
    return {
        "id": comment.pk,
        "author": comment.author.get_username(),
        "body": comment.body,
        "created_at": comment.created_at,
    }


def _request_row(pk: int) -> TransitionRequest:
    request = TransitionRequest.objects.select_related("version__model").filter(pk=pk).first()
    if request is None:
        raise RequestNotFound(f"There is no request #{pk}.")
    return request


@api.get(
    "/requests/{id}/comments",
    response={200: CommentPage, LOOKUP_ERRORS: Error},
    tags=["requests"],
)
def list_comments(request: HttpRequest, id: int, page: Query[PageIn]):  # noqa: A002
    """A request's comments (remarks without a vote), oldest first."""
    comments = _request_row(id).comments.select_related("author").order_by("created_at", "id")
    return _page(comments, page, lambda rows: [comment_out(c) for c in rows])


@api.post(
    "/requests/{id}/comments",
    response={201: CommentOut, WRITE_ERRORS: Error},
    tags=["requests"],
)
def post_comment(request: ApiRequest, id: int, body: CommentIn):  # noqa: A002
    """Comments on a request without voting, as the token's user. Anyone who may see the
    request may comment; the requester, its voters and its approvers are told by mail."""
    posted = conversation.comment_post(
        request_id=id, user=request.auth, body=body.body, seen_decision=body.seen_decision
    )
    return Status(201, comment_out(posted))


@api.get(
    "/requests/{id}/timeline",
    response={200: TimelineOut, LOOKUP_ERRORS: Error},
    tags=["requests"],
)
def get_timeline(request: HttpRequest, id: int):  # noqa: A002
    """What happened to a request, oldest first, read from the audit log: creation and gates,
    votes, comments, dismissed approvals, re-evaluations, the decision, transition attempts, and
    changes made in MLflow outside Quorum to the same model and target."""
    return {"items": [entry.as_json() for entry in timeline.timeline(_request_row(id))]}
