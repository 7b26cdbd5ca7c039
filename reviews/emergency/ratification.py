"""Ratifying a break-glass move afterwards.

When a break-glass move is done, the transition job that made it opens its `ratification` in the
transaction that records it (`ratification_open`): a request that needs the policy's normal quorum
and expires after `ratify_within`. A ratification ends only by approval; how any other end leaves
the move unratified is the decision's own step (`reviews.decisions.unratified`, called by
`deciding.decide`).
"""

from __future__ import annotations

from ..audit import chain
from ..models import RequestKind, TransitionRequest
from ..policies.spec import BreakGlassSpec


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
