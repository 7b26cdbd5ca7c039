"""Domain actions of the review engine: requests, votes, decisions, cancellation, expiry, retry.

Every action is a keyword-only function that validates everything before it writes, writes in one
transaction, changes a request's state only under a row lock, appends audit events in that same
transaction, and leaves side effects outside the database (enqueueing the transition job) to
`transaction.on_commit`. Refusals raise `reviews.errors.QuorumError` subclasses whose messages a
user can act on.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.models import ModelVersion, RegisteredModel
from registry.targets import Target

from . import audit, counting, escalation, gates, jobs, related, standing
from .errors import (
    AlreadyAtTarget,
    AlreadyVoted,
    AnswerRequired,
    CommentRequired,
    DuplicateRequest,
    InvalidReason,
    InvalidTarget,
    InvalidVersion,
    InvalidVote,
    NotAllowed,
    NotARequester,
    NotEligible,
    PageStale,
    RequestClosed,
    RequestNotFound,
    SelfApprovalNotAllowed,
    UnknownModel,
    UnknownVersion,
    VersionDeleted,
    WrongExecutionState,
)
from .models import (
    COMMENT_MAX,
    Decision,
    Execution,
    RequestKind,
    TransitionRequest,
    Vote,
    VoteChoice,
)
from .policies.matching import policy_as_spec, policy_for
from .policies.spec import target_problem

# -- targets ----------------------------------------------------------------------------------


def is_at_target(version: ModelVersion, target: str) -> bool:
    """Whether the mirror shows `version` at `target` (a stage, or an "@alias")."""
    return Target.parse(target).is_held_by(version)


def target_holder(model: RegisteredModel, target: str, *, exclude: int | None = None):
    """The version holding `target` now (the newest, when a stage holds several), or None."""
    parsed = Target.parse(target)
    if not parsed.has_holder:
        return None  # nothing "holds" None or Archived: there is no champion to compare with
    versions = ModelVersion.objects.live().filter(model=model)
    if exclude is not None:
        versions = versions.exclude(pk=exclude)
    if parsed.is_alias:
        number = model.aliases.get(parsed.alias)
        return versions.filter(version=number).first() if number is not None else None
    return versions.filter(stage=parsed.stage).order_by("-version").first()


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

    A failing required gate rejects it on the spot; passing auto-approve gates approve it. A
    rollback (`reviews.rollback`) is decided by its policy's `rollback:` section when it has one.
    A version rejected for this target before needs `rejection_answer`: what changed since.
    """
    registered = RegisteredModel.objects.filter(name=model, deleted=False).first()
    if registered is None:
        raise UnknownModel(f"There is no registered model named {model!r}.")
    try:
        number = int(str(version).strip())
    except ValueError:
        raise InvalidVersion(f"Version must be a whole number, got {str(version)!r}.") from None
    candidate = (
        ModelVersion.objects.select_for_update()  # one request creation per version at a time
        .filter(model=registered, version=number)
        .first()
    )
    if candidate is None:
        raise UnknownVersion(f"{model} has no version {number}.")
    candidate.model = registered
    if candidate.deleted:
        raise VersionDeleted(f"{model} version {number} was deleted in MLflow.")
    if problem := target_problem(target):
        raise InvalidTarget(f"Target {problem}.")
    if is_at_target(candidate, target):
        raise AlreadyAtTarget(f"{model} version {number} is already at {target}.")
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
    spec = policy_as_spec(policy)
    snapshot = spec.model_dump(mode="json")
    # Who may break glass is the policy's `break_glass.groups` (reviews.break_glass), not its
    # requesters; the move is made at once, gates or not.
    if kind == RequestKind.BREAK_GLASS:
        snapshot["gates"] = []
    elif refusal := requester_refusal(requester, snapshot["requesters"], target=target):
        raise NotARequester(refusal)
    expires_after = policy.expires_after
    if kind == RequestKind.ROLLBACK and spec.rollback is not None:
        # The version was approved for this target before: the policy's rollback rules decide.
        snapshot["require"] = snapshot["rollback"]["require"]
        if not spec.rollback.gates:
            snapshot["gates"] = []
        snapshot["rollback_rules"] = True
        expires_after = spec.rollback.expires_after or expires_after
    baseline = target_holder(registered, target, exclude=candidate.pk)
    results = gates.evaluate(
        snapshot["gates"], candidate.metrics, baseline.metrics if baseline else None
    )
    # What the evidence packet shows may add approvals, lower them or fail an evidence gate.
    sized = TransitionRequest(
        policy_snapshot=snapshot,
        candidate_metrics=candidate.metrics,
        baseline_metrics=baseline.metrics if baseline else None,
    )
    results += escalation.refresh(sized, candidate, baseline)
    snapshot = sized.policy_snapshot
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
                expires_at=timezone.now() + expires_after,
            )
    except IntegrityError:  # the partial unique index: another open request won the race
        raise DuplicateRequest(
            f"A request for {model} version {number} → {target} is already open."
        ) from None
    audit.record(
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
        },
    )
    if failed := gates.required_failures(results):
        decide(
            request,
            Decision.REJECTED,
            actor="policy",
            reason="Required gate failed: " + "; ".join(r.reason for r in failed),
        )
    elif gates.auto_approves(results):
        decide(
            request,
            Decision.APPROVED,
            actor="policy",
            reason="Every auto-approve gate passed: "
            + "; ".join(r.reason for r in results if r.kind == "auto_approve"),
        )
    return request


@transaction.atomic
def request_cancel(*, request_id: int, user: User, reason: str = "") -> TransitionRequest:
    """The requester (or staff) withdraws a pending request, saying why if they like: the reason
    goes in the decision, so the timeline and the mails show it."""
    reason = " ".join(reason.split())
    if len(reason) > COMMENT_MAX:
        raise InvalidReason(f"A reason is at most {COMMENT_MAX:,} characters.")
    request = locked_or_refuse(request_id)
    if request.requester_id != user.pk and not user.is_staff:
        raise NotAllowed("Only the requester or an admin can cancel this request.")
    if request.decision != Decision.PENDING:
        raise RequestClosed(f"Request #{request.pk} is already {request.decision}.")
    said = "Cancelled by " + user.get_username()
    decide(request, Decision.CANCELLED, actor=user, reason=f"{said}: {reason}" if reason else said)
    return request


def requests_expire_overdue(*, now=None) -> list[int]:
    """Expires every pending request past its deadline; returns their ids. Touches no MLflow."""
    now = now or timezone.now()
    expired = []
    overdue = TransitionRequest.objects.filter(decision=Decision.PENDING, expires_at__lt=now)
    for request_id in overdue.values_list("pk", flat=True):
        with transaction.atomic():
            try:
                request = TransitionRequest.objects.locked(request_id)
            except TransitionRequest.DoesNotExist:  # deleted since the query: nothing to expire
                continue
            if request.decision == Decision.PENDING and request.expires_at < now:
                decide(
                    request,
                    Decision.EXPIRED,
                    actor="system",
                    reason=f"No decision before {request.expires_at:%Y-%m-%d %H:%M} UTC",
                )
                expired.append(request_id)
    return expired


@transaction.atomic
def transition_retry(*, request_id: int, user: User) -> TransitionRequest:
    """An admin re-runs a failed transition."""
    if not user.is_staff:
        raise NotAllowed("Only an admin can retry a transition.")
    request = locked_or_refuse(request_id)
    if request.decision != Decision.APPROVED or request.execution != Execution.FAILED:
        raise WrongExecutionState(
            f"Request #{request.pk} has no failed transition to retry "
            f"(decision {request.decision}, execution {request.get_execution_display()})."
        )
    if blocker := standing.retry_blocker(request):
        raise WrongExecutionState(blocker)
    request.execution = Execution.QUEUED
    request.execution_requeues = 0  # the reconciler's allowance starts again
    request.save(update_fields=["execution", "execution_requeues"])
    audit.record(
        "transition.retry",
        actor=user,
        request=request,
        details={"previous_error": request.execution_error},
    )
    transaction.on_commit(lambda: jobs.enqueue_transition(request.pk, replace=True))
    return request


# -- votes ------------------------------------------------------------------------------------


def required_groups(request: TransitionRequest) -> list[str]:
    return [r["group"] for r in request.policy_snapshot.get("require", [])]


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
    return f"Only members of {' or '.join(requesters)} may request {target} for this model."


def eligible_groups(request: TransitionRequest, user: User) -> list[str]:
    """The required groups `user` belongs to now, in the policy's order."""
    required = required_groups(request)
    mine = set(user.groups.filter(name__in=required).values_list("name", flat=True))
    return [g for g in required if g in mine]


def vote_refusal(request: TransitionRequest, user: User) -> str | None:
    """Why `user` cannot vote on `request` now, in words for the page; None when they can."""
    try:
        _check_can_vote(request, user, request.votes.filter(user=user, stale=False).first())
    except (RequestClosed, NotEligible, AlreadyVoted) as refusal:
        return str(refusal)
    return None


def _check_can_vote(request: TransitionRequest, user, existing_vote: Vote | None) -> list[str]:
    if request.decision != Decision.PENDING:
        raise RequestClosed(f"This request is already {request.decision}.")
    if request.expires_at <= timezone.now():
        raise RequestClosed(f"This request expired at {request.expires_at:%Y-%m-%d %H:%M} UTC.")
    if request.requester_id == user.pk and not request.policy_snapshot.get("allow_self_approval"):
        raise SelfApprovalNotAllowed(
            "You requested this; this policy does not allow self-approval."
        )
    groups = eligible_groups(request, user)
    if not groups:
        raise NotEligible(f"You are not in {' or '.join(required_groups(request))}.")
    if existing_vote is not None:
        raise AlreadyVoted(f"You already voted ({existing_vote.decision}) on this request.")
    return groups


@transaction.atomic
def vote_cast(
    *,
    request_id: int,
    user: User,
    decision: str,
    comment: str = "",
    seen_decision: str | None = None,
) -> Vote:
    """Records one user's approval or rejection and decides the request when that settles it.

    The request row stays locked from the checks to the decision, so concurrent final votes
    produce exactly one approval and one transition job.
    """
    if decision not in VoteChoice.values:
        raise InvalidVote(f"A vote is approve or reject, not {decision!r}.")
    comment = comment.strip()
    if decision == VoteChoice.REJECT and not comment:
        raise CommentRequired("Say why you reject: the requester needs it to fix the model.")
    request = locked_or_refuse(request_id)
    stale_page_refusal(request, seen_decision)
    # A stale approval (the evidence changed since) stays in the history and does not stop its
    # voter from voting again: only a current vote does.
    groups = _check_can_vote(request, user, request.votes.filter(user=user, stale=False).first())
    vote = Vote.objects.create(
        request=request,
        user=user,
        decision=decision,
        comment=comment,
        groups=groups,
        seen_metrics={"candidate": request.candidate_metrics, "baseline": request.baseline_metrics},
        seen_evidence=escalation.seen_evidence(request),
    )
    audit.record(
        "vote.cast",
        actor=user,
        request=request,
        details={"decision": decision, "comment": comment, "groups": groups},
    )
    votes = list(request.votes.select_related("user"))
    rejections = [v for v in votes if v.decision == VoteChoice.REJECT and not v.stale]
    if len(rejections) >= request.policy_snapshot.get("rejections_needed", 1):
        decide(request, Decision.REJECTED, actor=user, reason=comment)
    elif (count := counting.tally(request, votes)).met:
        decide(request, Decision.APPROVED, actor=user, reason=count.reason())
    return vote


def approvals_mark_stale(request: TransitionRequest, *, reason: str) -> int:
    """Approvals given so far stop counting (the evidence they saw changed); returns how many.

    They stay in the history, and their voters may vote again on the new evidence.
    """
    stale = request.votes.filter(decision=VoteChoice.APPROVE, stale=False)
    voters = list(stale.values_list("user__username", flat=True))
    count = stale.update(stale=True, stale_reason=reason, stale_at=timezone.now())
    if count:
        audit.record(
            "votes.stale",
            actor="system",
            request=request,
            details={"reason": reason, "voters": voters},
        )
    return count


def stale_page_refusal(request: TransitionRequest, seen_decision: str | None) -> None:
    """Refuses a form sent from a page that showed `request` in another decision state.

    A reviewer who typed in one tab while the request was decided in another must see that
    first: their text is kept by the page, not posted into a conversation that moved on.
    """
    if seen_decision and request.decision != seen_decision:
        raise PageStale(
            f"While this page was open, request #{request.pk} became {request.decision} "
            f"(the page showed it {seen_decision}). Nothing was posted: read what changed, "
            "then send your text again."
        )


# -- decisions --------------------------------------------------------------------------------


def locked_or_refuse(request_id: int) -> TransitionRequest:
    """The request a person named, under its row lock; `RequestNotFound` when there is none."""
    try:
        return TransitionRequest.objects.locked(request_id)
    except TransitionRequest.DoesNotExist:
        raise RequestNotFound(f"There is no request #{request_id}.") from None


def decide(request: TransitionRequest, decision: str, *, actor, reason: str) -> None:
    """Moves a locked pending request to its decision; an approval queues the transition job.

    A decision is taken once: callers check under the row lock that the request is pending, and
    a request that is not (a caller that skipped the check) is refused, not decided twice.
    """
    if request.decision != Decision.PENDING:
        raise RequestClosed(
            f"Request #{request.pk} is already {request.decision}; it cannot also be {decision}."
        )
    request.decision = decision
    request.decided_at = timezone.now()
    request.decided_by = actor if isinstance(actor, User) else None
    request.decision_reason = reason
    fields = ["decision", "decided_at", "decided_by", "decision_reason"]
    if decision == Decision.APPROVED:
        request.execution = Execution.QUEUED
        fields.append("execution")
    request.save(update_fields=fields)
    audit.record(f"request.{decision}", actor=actor, request=request, details={"reason": reason})
    if decision == Decision.APPROVED:
        transaction.on_commit(lambda: jobs.enqueue_transition(request.pk))
