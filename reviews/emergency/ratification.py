"""Ratifying a break-glass move afterwards, and what happens when the quorum does not.

When a break-glass move is done (its `transition.done` event, `on_event_recorded`), a
`ratification` request opens that needs the policy's normal quorum and expires after
`ratify_within` (`ratification_open`). A ratification ends only by approval: rejected, expired or
cancelled (only staff may cancel one), the move is unratified (`on_ratification_decided`), once,
whatever ends it and however many ends race: staff are alerted and, with `revert`, the version
that held the target before is put back by a request the policy approves at once.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..audit import chain
from ..decisions import pins
from ..execution import jobs
from ..models import Decision, Execution, RequestKind, TransitionRequest
from ..policies.spec import BreakGlassSpec

# The ends of a ratification other than approval: each leaves the move unratified.
UNRATIFYING = ("request.rejected", "request.expired", "request.cancelled")


def ratification_open(request: TransitionRequest) -> TransitionRequest | None:
    """Opens the ratification of a break-glass request whose move is done (called by the
    transition job in the transaction that records it): the policy's normal quorum, due by the
    break-glass time plus `ratify_within`. Once per break-glass request."""
    if request.kind != RequestKind.BREAK_GLASS or request.ratifications.exists():
        return None
    snapshot = dict(request.policy_snapshot)
    rules = BreakGlassSpec.model_validate(snapshot["break_glass"])
    # The move is done: gates would compare the version with itself; people decide.
    snapshot["gates"] = []
    ratification = TransitionRequest.objects.create(
        version=request.version,
        target=request.target,
        requester=request.requester,
        comment=request.comment,
        kind=RequestKind.RATIFICATION,
        ratifies=request,
        policy=request.policy,
        policy_snapshot=snapshot,
        baseline=request.baseline,
        candidate_metrics=request.candidate_metrics,
        baseline_metrics=request.baseline_metrics,
        # The gates the move skipped ("skipped: break glass"): what the ratifiers judge.
        gate_results=request.gate_results,
        # The ratifiers approve the bytes that were moved (pinned by the move at the latest).
        content_digest=request.content_digest,
        expires_at=request.created_at + rules.ratify_within,
    )
    chain.record(
        "request.created",
        actor="system",
        request=ratification,
        details={
            "kind": RequestKind.RATIFICATION,
            "ratifies": request.pk,
            "target": request.target,
            "policy": snapshot.get("name"),
            "comment": request.comment,
            "baseline": request.baseline.version if request.baseline else None,
            "gates": request.gate_results,
        },
    )
    return ratification


def on_event_recorded(sender, event, **kwargs) -> None:
    """Follows a break-glass move through the audit chain: its move done opens the ratification;
    its ratification rejected, expired or cancelled leaves it unratified."""
    if event.request_id is None:
        return
    if event.action == "transition.done" and event.request.kind == RequestKind.BREAK_GLASS:
        ratification_open(event.request)
    elif event.action in UNRATIFYING:
        on_ratification_decided(event.request, event.action.removeprefix("request."))


def on_ratification_decided(ratification: TransitionRequest, decision: str) -> None:
    """A ratification ended other than by approval leaves its break-glass move unratified: staff
    are alerted and, when the policy says `revert`, the previous holder is put back at once.

    Runs in the transaction that decided the ratification. Exactly once per break-glass move:
    under the move's row lock, a move already unratified (its `break_glass.unratified` event) is
    left alone, so two ends racing (an expiry and a cancellation) alert and revert once."""
    if ratification.kind != RequestKind.RATIFICATION:
        return
    if decision == Decision.APPROVED or decision == Decision.PENDING:
        return
    if ratification.ratifies_id is None:
        return
    moved = TransitionRequest.objects.locked(ratification.ratifies_id)
    if moved.audit_events.filter(action="break_glass.unratified").exists():
        return
    rules = BreakGlassSpec.model_validate(ratification.policy_snapshot["break_glass"])
    previous = moved.baseline
    revert = rules.on_unratified == "revert"
    reverting = None
    if revert and previous is not None and not previous.deleted:
        reverting = _revert(moved, previous)
    chain.record(
        "break_glass.unratified",
        actor="system",
        request=moved,
        details={
            "ratification": ratification.pk,
            "decision": decision,
            "on_unratified": rules.on_unratified,
            "reverted_to": previous.version if reverting is not None and previous else None,
            "revert_request": reverting.pk if reverting is not None else None,
            "reason": ratification.decision_reason,
        },
    )


def _revert(moved: TransitionRequest, previous) -> TransitionRequest | None:
    """A request putting `previous` back at the target, approved by the policy at once."""
    if TransitionRequest.objects.open().filter(version=previous, target=moved.target).exists():
        return None
    revert = TransitionRequest.objects.create(
        version=previous,
        target=moved.target,
        requester=moved.requester,
        comment=f"Reverting break-glass move #{moved.pk}: it was not ratified.",
        kind=RequestKind.ROLLBACK,
        undoes=moved,
        policy=moved.policy,
        policy_snapshot=moved.policy_snapshot,
        baseline=moved.version,
        candidate_metrics=previous.metrics,
        baseline_metrics=moved.version.metrics,
        gate_results=[],
        # The bytes that held the target before: the transition job moves only those.
        content_digest=pins.content_pin(previous),
        expires_at=timezone.now() + timedelta(days=1),
        decision=Decision.APPROVED,
        decided_at=timezone.now(),
        decision_reason=f"Break-glass move #{moved.pk} was not ratified; the policy reverts it.",
        execution=Execution.QUEUED,
    )
    chain.record(
        "request.approved",
        actor="policy",
        request=revert,
        details={"reason": revert.decision_reason, "kind": RequestKind.ROLLBACK},
    )
    transaction.on_commit(lambda: jobs.enqueue_transition(revert.pk))
    return revert
