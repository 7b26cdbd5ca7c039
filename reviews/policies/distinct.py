"""Each person counts once, for one group: the assignment of approvers to a policy's slots.

A policy asks for, say, 1 approval from ml-leads and 2 from data-science. Someone in both groups
could fill a slot in either, but a person is one approver. `assign` places people in slots as a
maximum bipartite b-matching (the decisions count votes with it, `reviews.decisions.counting`);
`shortfall` says how many slots a policy's groups can never fill with distinct people (policy
loading warns about it, and break glass says a ratification cannot pass). Pure functions: they
know groups and names, not requests or votes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

Voter = TypeVar("Voter", bound=Hashable)


def assign(
    needs: Sequence[tuple[str, int]], voters: Sequence[tuple[Voter, Iterable[str]]]
) -> dict[Voter, str]:
    """Assigns each voter to at most one of their groups, filling as many slots as possible.

    `needs` is (group, approvals needed) in the policy's order; `voters` is (voter, the groups
    they may sign for) in the order they voted. Returns {voter: group} for the voters who count.
    Augmenting paths (Kuhn's algorithm, with capacities) keep every voter placed once placed, so
    the result is a maximum assignment and the earliest voters are the ones that count.
    """
    capacity = dict(needs)
    order = {group: i for i, group in enumerate(capacity)}
    eligible = {
        voter: sorted({g for g in groups if capacity.get(g, 0) > 0}, key=order.__getitem__)
        for voter, groups in voters
    }
    holders: dict[str, list[Voter]] = {group: [] for group in capacity}
    placed: dict[Voter, str] = {}

    def place(voter: Voter, visited: set[str]) -> bool:
        for group in eligible[voter]:
            if group in visited:
                continue
            visited.add(group)
            if len(holders[group]) >= capacity[group]:
                # Full: make room by moving one of its voters to another of their groups.
                for other in holders[group]:
                    if place(other, visited):
                        holders[group].remove(other)
                        break
                else:
                    continue
            holders[group].append(voter)
            placed[voter] = group
            return True
        return False

    for voter, _ in voters:
        if voter not in placed:
            place(voter, set())
    return placed


def shortfall(needs: Sequence[tuple[str, int]], members: dict[str, set[str]]) -> int:
    """How many slots of `needs` the groups' members could not fill even if all of them approved,
    each counting once."""
    people = sorted({name for group, _ in needs for name in members.get(group, ())})
    counted = assign(
        needs, [(name, [g for g, _ in needs if name in members.get(g, ())]) for name in people]
    )
    return sum(n for _, n in needs) - len(counted)
