"""A break-glass move whose ratification ended other than by approval: unratified.

A ratification ends only by approval. Rejected, expired or cancelled (only staff may cancel one),
`deciding.decide` calls `on_ratification_decided` in the transaction that decides it: the move is
unratified, once, whatever ends it and however many ends race: staff are alerted and, with
`on_unratified: revert`, the version that held the target before is put back by a request the
policy approves at once. (The ratification itself opens when the move is done:
`reviews.emergency.ratification`.)
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from registry import content

from ..audit import chain
from ..models import Decision, Execution, RequestKind, TransitionRequest
from ..policies.spec import BreakGlassSpec
from . import handoff


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
        content_digest=content.known_digest(previous),
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
    transaction.on_commit(lambda: handoff.enqueue_transition(revert.pk))
    return revert
