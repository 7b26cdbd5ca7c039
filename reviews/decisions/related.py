"""Requests related to one: earlier rejections of the same version for the same target, which
the requester must answer before asking again, and other open requests for the same model and
target, which reviewers should weigh together.

The promotion form, the request page, the API and the CLI all read these; the engine
(`reviews.decisions.opening.request_create`) refuses a repeat request that does not answer a
rejection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import BooleanField, ExpressionWrapper, Q

from registry.models import ModelVersion

from ..models import OPEN_CONDITION, Decision, TransitionRequest


def rejected_by(request: TransitionRequest) -> str:
    """Who rejected: the voter whose rejection decided it, else the policy's gates."""
    if request.decided_by is not None:
        return request.decided_by.get_username()
    return "the policy's gates"


def rejection_words(request: TransitionRequest) -> str:
    """One sentence: "Previously rejected in #3 by bob: 'Recall dropped.'"."""
    reason = request.decision_reason.strip()
    said = f"Previously rejected in #{request.pk} by {rejected_by(request)}"
    if not reason:
        return said + "."
    ends = "" if reason[-1] in ".!?" else "."
    return f"{said}: '{reason}'{ends}"


def previous_rejections(version: ModelVersion, target: str) -> list[TransitionRequest]:
    """The rejected requests for `version` to reach `target`, newest first."""
    return list(
        TransitionRequest.objects.filter(version=version, target=target, decision=Decision.REJECTED)
        .select_related("decided_by")
        .order_by("-decided_at", "-id")
    )


@dataclass
class ForVersion:
    """What the version page and the promotion form show per target: rejections of this
    version, its own open requests, other versions' open requests; and its signed proofs."""

    rejections: dict[str, list[TransitionRequest]] = field(default_factory=dict)
    open_others: dict[str, list[TransitionRequest]] = field(default_factory=dict)
    open_own: dict[str, TransitionRequest] = field(default_factory=dict)
    # Requests whose approval proof was signed on this version, newest proof first.
    proofs: list[TransitionRequest] = field(default_factory=list)


def for_version(version: ModelVersion) -> ForVersion:
    """Rejections, open requests and proofs of `version` and the open requests of its model's
    other versions, by target, in one query."""
    own = Q(version=version) & (
        Q(decision=Decision.REJECTED) | OPEN_CONDITION | Q(attested_at__isnull=False)
    )
    rows = (
        TransitionRequest.objects.filter(version__model_id=version.model_id)
        .filter(own | (OPEN_CONDITION & ~Q(version=version)))
        .annotate(is_open=ExpressionWrapper(OPEN_CONDITION, output_field=BooleanField()))
        .select_related("version", "decided_by")
        .order_by("-created_at", "-id")
    )
    found = ForVersion()
    for row in rows:
        if row.version_id != version.pk:
            found.open_others.setdefault(row.target, []).append(row)
            continue
        if row.decision == Decision.REJECTED:
            found.rejections.setdefault(row.target, []).append(row)
        if row.is_open:
            found.open_own[row.target] = row
        if row.attested_at is not None:
            found.proofs.append(row)
    found.proofs.sort(key=lambda row: row.attested_at or row.created_at, reverse=True)
    return found


@dataclass
class Related:
    """What a request's page shows about its neighbours."""

    rejections: list[TransitionRequest]
    open_others: list[TransitionRequest]


def related_to(review: TransitionRequest) -> Related:
    """Earlier rejections of the same version for the same target, and the other open requests
    for the same model and target, in one query."""
    rows = (
        TransitionRequest.objects.filter(
            version__model_id=review.version.model_id, target=review.target
        )
        .exclude(pk=review.pk)
        .filter(
            Q(
                version_id=review.version_id,
                decision=Decision.REJECTED,
                created_at__lt=review.created_at,
            )
            | OPEN_CONDITION
        )
        .select_related("version", "decided_by")
        .order_by("-created_at", "-id")
    )
    rejections, open_others = [], []
    for row in rows:
        if row.decision == Decision.REJECTED:
            rejections.append(row)
        else:
            open_others.append(row)
    return Related(rejections=rejections, open_others=open_others)
