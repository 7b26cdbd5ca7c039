"""Opening a request: the one function that creates one, and what it needs to know first (the
version holding a target now, whether the requester may ask).

Like every domain action of the review engine (`voting`, `deciding`), `request_create` is a
keyword-only function that validates everything before it writes, writes in one transaction,
appends audit events in that same transaction, and leaves side effects outside the database
(enqueueing the transition job, when its gates approve it at once) to `transaction.on_commit`.
Refusals raise `reviews.errors.QuorumError` subclasses whose messages a user can act on.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from registry.models import ModelVersion, RegisteredModel
from registry.targets import Target

from ..audit import chain
from ..errors import (
    AlreadyAtTarget,
    AnswerRequired,
    DuplicateRequest,
    InvalidReason,
    InvalidVersion,
    NotARequester,
    UnknownModel,
    UnknownVersion,
    VersionDeleted,
)
from ..models import COMMENT_MAX, Decision, RequestKind, TransitionRequest
from ..policies.matching import policy_for
from ..policies.spec import parse_target
from . import handoff, pins, related, sizing
from .deciding import decide

# -- targets ----------------------------------------------------------------------------------


def is_at_target(version: ModelVersion, target: str) -> bool:
    """Whether the mirror shows `version` at `target` (a stage, or an "@alias")."""
    return Target.parse(target).is_held_by(version)


def target_holders(
    model: RegisteredModel, target: str, *, exclude: int | None = None
) -> QuerySet[ModelVersion]:
    """The versions holding `target` now, newest first: a stage may hold several, an alias one."""
    parsed = Target.parse(target)
    versions = ModelVersion.objects.live().filter(model=model)
    if not parsed.has_holder:
        return versions.none()  # nothing "holds" None or Archived: there is no champion
    if exclude is not None:
        versions = versions.exclude(pk=exclude)
    if parsed.is_alias:
        number = model.aliases.get(parsed.alias)
        return versions.filter(version=number) if number is not None else versions.none()
    return versions.filter(stage=parsed.stage).order_by("-version")


def target_holder(model: RegisteredModel, target: str, *, exclude: int | None = None):
    """The version holding `target` now (the newest, when a stage holds several), or None. With
    its evidence packet, which every caller compares the candidate's with."""
    return target_holders(model, target, exclude=exclude).select_related("evidence").first()


def model_and_number(model: str, version: int | str) -> tuple[RegisteredModel, int]:
    """The mirrored model named `model` and `version` read as a number, or the refusal: no such
    model (or deleted in MLflow), not a whole number."""
    registered = RegisteredModel.objects.filter(name=model, deleted=False).first()
    if registered is None:
        raise UnknownModel(f"There is no registered model named {model!r}.")
    try:
        return registered, int(str(version).strip())
    except ValueError:
        raise InvalidVersion(f"Version must be a whole number, got {str(version)!r}.") from None


def move_candidate(model: str, version: int | str, target: str, *, lock: bool) -> ModelVersion:
    """The version of `model` a move to `target` would take there (its `model` set), or the
    refusal: no such model or version, not a number, deleted in MLflow, a target that is none,
    already there. `lock` (in a transaction): one request creation per version at a time."""
    registered, number = model_and_number(model, version)
    versions = ModelVersion.objects.select_for_update() if lock else ModelVersion.objects.all()
    candidate = versions.filter(model=registered, version=number).first()
    if candidate is None:
        raise UnknownVersion(f"{model} has no version {number}.")
    candidate.model = registered
    if candidate.deleted:
        raise VersionDeleted(f"{model} version {number} was deleted in MLflow.")
    parse_target(target)
    if is_at_target(candidate, target):
        raise AlreadyAtTarget(f"{model} version {number} is already at {target}.")
    return candidate


# -- requests ---------------------------------------------------------------------------------


@transaction.atomic
def request_create(
    *,
    model: str,
    version: int | str,
    target: str,
    requester: User,
    comment: str = "",
    kind: RequestKind = RequestKind.PROMOTION,
    undoes: TransitionRequest | None = None,
    rejection_answer: str = "",
) -> TransitionRequest:
    """Opens a request for `version` of `model` to reach `target`, evaluating its gates at once.

    What it needs is sized by `reviews.decisions.sizing.size` (the same function the previews
    use): a failing required gate rejects it on the spot; passing auto-approve gates approve it
    unless an escalation applies or the version leaves a protected target. A rollback
    (`reviews.emergency.rollback`) is decided by its policy's `rollback:` rules. A version
    rejected for this target before needs `rejection_answer`: what changed since.
    """
    candidate = move_candidate(model, version, target, lock=True)
    registered, number = candidate.model, candidate.version
    existing = TransitionRequest.objects.open().filter(version=candidate, target=target).first()
    if existing is not None:
        raise DuplicateRequest(
            f"Request #{existing.pk} for {model} version {number} → {target} is still open."
        )
    rejection_answer = rejection_answer.strip()
    if len(rejection_answer) > COMMENT_MAX:
        raise InvalidReason(f"An answer is at most {COMMENT_MAX:,} characters.")
    rejections = related.previous_rejections(candidate, target)
    if rejections and not rejection_answer:
        raise AnswerRequired(
            f"{related.rejection_words(rejections[0])} Answer it (what changed since?) "
            f"before requesting {model} version {number} → {target} again."
        )
    policy = policy_for(model, target)
    baseline = target_holder(registered, target, exclude=candidate.pk)
    sized = sizing.size(
        policy=policy, kind=kind, candidate=candidate, baseline=baseline, target=target
    )
    snapshot, expires_after = sized.snapshot, sized.expires_after
    # Who may break glass is the policy's `break_glass.groups` (reviews.emergency.break_glass), not
    # its requesters.
    if kind != RequestKind.BREAK_GLASS and (
        refusal := requester_refusal(requester, snapshot["requesters"], target=target)
    ):
        raise NotARequester(refusal)
    history: dict = {}
    if kind != RequestKind.BREAK_GLASS:
        # Only a value that may approve without people needs its history read (MLflow calls).
        history = pins.read_history(candidate, pins.auto_approve_metrics(sized.results))
        sized.results = pins.hold_auto_approval(sized.results, history)
    results = sized.results
    try:
        with transaction.atomic():
            request = TransitionRequest.objects.create(
                version=candidate,
                target=target,
                requester=requester,
                comment=comment,
                kind=kind,
                undoes=undoes,
                rejection_answer=rejection_answer,
                policy=policy,
                policy_snapshot=snapshot,
                baseline=baseline,
                candidate_metrics=candidate.metrics,
                baseline_metrics=baseline.metrics if baseline else None,
                gate_results=[r.as_json() for r in results],
                content_digest=pins.content_pin(candidate),
                metric_pins=pins.metric_pins(
                    snapshot["gates"],
                    candidate.metrics,
                    baseline.metrics if baseline else None,
                    history,
                ),
                expires_at=timezone.now() + expires_after,
            )
    except IntegrityError:  # the partial unique index: another open request won the race
        raise DuplicateRequest(
            f"A request for {model} version {number} → {target} is already open."
        ) from None
    chain.record(
        "request.created",
        actor=requester,
        request=request,
        details={
            "kind": kind,
            **({"undoes": undoes.pk} if undoes is not None else {}),
            "target": target,
            "policy": policy.name,
            "comment": comment,
            **({"rejection_answer": rejection_answer} if rejections else {}),
            "baseline": baseline.version if baseline else None,
            "gates": [r.as_json() for r in results],
            "escalation": snapshot["escalation"]["applied"],
            "content_digest": request.content_digest,
            **({"leaves": snapshot["leaves"]} if snapshot.get("leaves") else {}),
        },
    )
    # The guard keeps the version's content, run and metrics still while it is under review.
    handoff.guard_refresh_soon()
    if failed := sized.failures:
        decide(
            request,
            Decision.REJECTED,
            actor="policy",
            reason="Required gate failed: " + "; ".join(r.reason for r in failed),
        )
    elif sized.approved_at_once and not pins.unpinned(request):
        # Without a pinned digest, approved when the digest job pins one (`pins.on_content_stored`).
        decide(
            request,
            Decision.APPROVED,
            actor="policy",
            reason="Every auto-approve gate passed: "
            + "; ".join(r.reason for r in results if r.kind == "auto_approve"),
        )
    return request


def requester_refusal(
    user: User, requesters: list[str], *, target: str, groups: set[str] | None = None
) -> str | None:
    """Why `user` may not request `target` under a policy naming `requesters`; None if they may.

    A policy naming no requester groups lets any signed-in user request. `groups` are the user's
    group names, when the caller has read them already.
    """
    if not requesters:
        return None
    if groups is None:
        groups = set(user.groups.filter(name__in=requesters).values_list("name", flat=True))
    if not groups.isdisjoint(requesters):
        return None
    return (
        f"Only members of {' or '.join(requesters)} may request {target} for this model: "
        f"{whom_to_ask(requesters)}"
    )


ASKED_BY_NAME = 5  # members named in a refusal; more are counted


def whom_to_ask(groups: list[str]) -> str:
    """Who can help someone refused for not being in `groups`: a few of their active members by
    name, else an administrator."""
    names = sorted(
        set(
            User.objects.filter(groups__name__in=groups, is_active=True).values_list(
                "username", flat=True
            )
        )
    )
    if not names:
        have = "has" if len(groups) == 1 else "have"
        return f"{' and '.join(groups)} {have} no members yet; ask an administrator to add you."
    shown = ", ".join(names[:ASKED_BY_NAME])
    more = f" and {len(names) - ASKED_BY_NAME} more" if len(names) > ASKED_BY_NAME else ""
    return f"ask {shown}{more} to request it, or an administrator to add you."
