"""Approvals that stop counting: the evidence, a gated metric or the content they saw changed."""

from __future__ import annotations

from django.utils import timezone

from ..audit import chain
from ..models import TransitionRequest, VoteChoice


def approvals_mark_stale(request: TransitionRequest, *, reason: str) -> int:
    """Approvals given so far stop counting (the evidence they saw changed); returns how many.

    They stay in the history, and their voters may vote again on the new evidence.
    """
    stale = request.votes.filter(decision=VoteChoice.APPROVE, stale=False)
    voters = list(stale.values_list("user__username", flat=True))
    count = stale.update(stale=True, stale_reason=reason, stale_at=timezone.now())
    if count:
        chain.record(
            "votes.stale",
            actor="system",
            request=request,
            details={"reason": reason, "voters": voters},
        )
    return count
