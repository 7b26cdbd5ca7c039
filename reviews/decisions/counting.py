"""How approvals count towards a policy's requirements: each person once, for one group.

A policy asks for, say, 1 approval from ml-leads and 2 from data-science. Someone in both groups
could fill a slot in either, but a person is one approver: their approval is assigned to at most
one required group, so "3 approvals" always means 3 different people. Which group is chosen
matters (an ml-lead who is also a data scientist must be counted for data-science when another
ml-lead has approved too), so the assignment is a maximum bipartite b-matching between approving
voters and required groups, each group taking at most the approvals it needs: as many approvals
count as can. Quorum is reached exactly when every slot is filled.

The assignment is deterministic: voters are placed in the order they voted, each trying its
groups in the policy's order, and an earlier voter is moved to another of their groups only when
that lets a later one count. Re-computing it from the same votes gives the same answer; an
approval that fits nowhere (its groups are full) counts for no group.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone

from ..audit import chain
from ..models import TransitionRequest, Vote, VoteChoice

# The assignment itself knows only groups and names; it lives with the policies, whose loading
# warns with `shortfall` too. Callers keep counting with `counting.assign`/`counting.shortfall`.
from ..policies.distinct import assign as assign
from ..policies.distinct import shortfall as shortfall


@dataclass(frozen=True)
class GroupProgress:
    group: str
    needed: int
    # The people counted for this group: none of them is counted for another group.
    approvers: tuple[str, ...]

    @property
    def met(self) -> bool:
        return len(self.approvers) >= self.needed

    def __str__(self) -> str:
        return f"{self.group} {min(len(self.approvers), self.needed)}/{self.needed}"


@dataclass(frozen=True)
class Tally:
    """Where a request's approvals stand: per required group, and per vote."""

    progress: list[GroupProgress]
    # Vote id -> the required group that approval counts for; absent when it counts for none.
    counted_for: dict[int, str]
    # The people counted, each once, in the order they voted: who "approved by" names.
    approvers: tuple[str, ...] = ()

    @property
    def met(self) -> bool:
        return all(p.met for p in self.progress)

    @property
    def people(self) -> int:
        return len(self.counted_for)

    def summary(self) -> str:
        """'ml-leads 1/1 (lead), data-science 2/2 (ana, bo)', for decision reasons."""
        return ", ".join(
            str(p) + (f" ({', '.join(p.approvers)})" if p.approvers else "") for p in self.progress
        )

    def reason(self) -> str:
        """Why an approval decided the request, naming the distinct people it took."""
        who = "1 person" if self.people == 1 else f"{self.people} different people"
        return f"Quorum reached by {who}: {self.summary()}"


def tally(request: TransitionRequest, votes: list[Vote] | None = None) -> Tally:
    """Counts `request`'s current (not stale) approvals, each person once (see the module).

    `votes` are the request's votes with their users loaded, when the caller has them already.
    """
    if votes is None:
        votes = list(request.votes.select_related("user"))
    return tally_of(request.policy_snapshot, votes)


def tally_of(policy_snapshot: dict, votes: Iterable[Vote]) -> Tally:
    """`tally` from a request's policy snapshot, for lists that load requests as plain rows."""
    approving = sorted(
        (v for v in votes if v.decision == VoteChoice.APPROVE and not v.stale),
        key=lambda v: (v.created_at, v.pk),
    )
    needs = [(r["group"], r["approvals"]) for r in policy_snapshot.get("require", [])]
    counted = assign(needs, [(v.pk, v.groups) for v in approving])
    return Tally(
        progress=[
            GroupProgress(
                group=group,
                needed=needed,
                approvers=tuple(
                    v.user.get_username() for v in approving if counted.get(v.pk) == group
                ),
            )
            for group, needed in needs
        ],
        counted_for=counted,
        approvers=tuple(v.user.get_username() for v in approving if v.pk in counted),
    )


def progress(request: TransitionRequest, votes: list[Vote] | None = None) -> list[GroupProgress]:
    """Per required group: how many approvals it needs and who is counted for it."""
    return tally(request, votes).progress


# -- approvals that stop counting: the evidence, a gated metric or the content they saw changed --
def approvals_mark_stale(
    request: TransitionRequest, *, reason: str, cause: dict[str, str] | None = None
) -> int:
    """Approvals given so far stop counting (the evidence they saw changed); returns how many.

    They stay in the history, and their voters may vote again on the new evidence. `cause`, a
    link to what changed ({"label": ..., "url": ...}), is shown beside the reason.
    """
    stale = request.votes.filter(decision=VoteChoice.APPROVE, stale=False)
    voters = list(stale.values_list("user__username", flat=True))
    count = stale.update(
        stale=True, stale_reason=reason, stale_cause=cause or {}, stale_at=timezone.now()
    )
    if count:
        details: dict = {"reason": reason, "voters": voters}
        if cause:
            details["cause"] = cause
        chain.record("votes.stale", actor="system", request=request, details=details)
    return count
