"""What the API's bodies and answers are, as django-ninja schemas: the checked text and number
types bodies are made of, pages, the error shape and the refusals each kind of endpoint
declares, and the requests (with their votes, comments and timeline) and attestation keys.
The registry's models and versions have theirs in `model_schemas`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict

from ..models import COMMENT_MAX, Decision

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
    stale_cause: dict[str, str] = Field(
        default_factory=dict,
        description='What made it stale, when there is a page for it: `label` ("request #7", '
        '"fraud v3") and `url` (that page\'s path on this server); empty otherwise.',
    )
    seen_digest: str | None = Field(
        None,
        description="The content digest the request had pinned when this vote was cast; null "
        "when it was not known yet (such an approval goes stale once the digest is pinned).",
    )
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
        "required gate: it rejects), needs_sign_off (an auto-approve gate that did not fire: "
        "people sign off instead), or skipped (a break-glass move: evaluated, applied to nothing)."
    )
    content_digest: str | None = Field(
        None,
        description="The content digest (sha256 over the version's model files, as `quorum "
        "verify` computes it) this request approves; null until the digest job has read them. "
        "The transition moves the version only if its files still give this digest.",
    )
    metric_pins: dict[str, Any] = Field(
        default={},
        description="The metric values the gates read, pinned at creation: {candidate: {metric: "
        "{value, ...}}, baseline: {metric: value}}. A value an auto-approve gate read carries "
        "its history: step, timestamp, replaced (logged again after the version was "
        "registered), why, points ([step, value, timestamp_ms], the latest 20).",
    )
    escalation: list[dict[str, str]] = Field(
        default=[],
        description="The policy's evidence rules that changed the requirements: "
        "[{when, reason}] (`when` is signature_breaking, ..., or no_change).",
    )
    leaves: dict[str, Any] | None = Field(
        default=None,
        description="The protected target the version leaves by this move ({target, policy, "
        "require}): its sign-offs are part of `requirements`, and no gate approves the request.",
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


class RollbackPreviewOut(Schema):
    model: str
    target: str
    version: int = Field(description="The version the rollback would put back.")
    requirements: list[dict[str, Any]] = Field(
        description="The sign-offs it would need: [{group, approvals}], each person counting once."
    )
    needs: str = Field(
        description="The same in words, as the model page's button says it: 'needs 1 of "
        "ml-leads', 'approved at once by its auto-approve gates' or 'rejected at once: ...'."
    )
    decided_at_once: Literal["approved", "rejected"] | None = Field(
        description="What its gates would decide on the spot; null when people decide."
    )
    escalation: list[dict[str, str]] = Field(
        description="Escalation rules that apply (only with the policy's `rollback: {escalate: "
        "true}`): [{when, reason}]."
    )
    leaves: dict[str, Any] | None = Field(
        description="The protected target the version would leave ({target, policy, require}): "
        "its sign-offs are included in `requirements`."
    )
    gates: list[dict[str, Any]] = Field(description="Gate results, as a request would store them.")


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


# The refusals each kind of endpoint can answer with, for the schema and the docs.
READ_ERRORS = frozenset({400, 401})
LOOKUP_ERRORS = frozenset({400, 401, 404})
WRITE_ERRORS = frozenset({400, 401, 403, 404, 409, 422})
