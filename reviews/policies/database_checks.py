"""A policy file checked against the database: what it asks that the database cannot give.

The format itself is checked first (`reviews.policies.spec`); these checks need the users, the
groups and the mirrored model names: unknown users and groups, more approvals than a group has
members, a group the identity provider manages given members in the file, two policies with one
name, and two policies equally specific for one (model, target). Each part of the file has its
own checker, and every section that names groups (`require`, `rollback.require`,
`escalate[].require`, `requesters`, `break_glass.groups`) goes through one rule for its kind.
The admin's form runs the same checks on one policy (`policy_problems`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from identity.mapping import managed_group_names, managed_message
from registry.models import RegisteredModel

from ..errors import Problem
from .matching import specificity
from .spec import PolicyFile, PolicySpec, RequirementSpec, target_problem

# Ties between policies reported before giving up on a file full of them.
MAX_TIES_REPORTED = 50

# How a problem names another policy: in a file by its index (and name), in a form by its name.
PolicyNamer = Callable[[Sequence[PolicySpec], int], str]


def _by_index(policies: Sequence[PolicySpec], index: int) -> str:
    return f"policies[{index}] ({policies[index].name!r})"


def _by_name(policies: Sequence[PolicySpec], index: int) -> str:
    return f"policy {policies[index].name!r}"


Place = tuple[str | int, ...]


def _requirement_lists(policy: PolicySpec) -> list[tuple[Place, list[RequirementSpec]]]:
    """Every section of a policy that asks for approvals from groups, with its place."""
    lists: list[tuple[Place, list[RequirementSpec]]] = [(("require",), policy.require)]
    if policy.rollback and policy.rollback.require:
        lists.append((("rollback", "require"), policy.rollback.require))
    lists += [(("escalate", j, "require"), rule.require) for j, rule in enumerate(policy.escalate)]
    return lists


def _group_lists(policy: PolicySpec) -> list[tuple[Place, list[str]]]:
    """Every section of a policy that lists groups without counts, with its place."""
    lists: list[tuple[Place, list[str]]] = [(("requesters",), policy.requesters)]
    if policy.break_glass:
        lists.append((("break_glass", "groups"), policy.break_glass.groups))
    return lists


@dataclass(frozen=True)
class _KnownGroups:
    """The groups a file may name: `sizes` (active members) of the file's and the database's
    groups, and the provider-managed ones (`unbounded`), known whatever their size. One rule for
    every section that names a group: `require`, `rollback.require`, `escalate[].require`,
    `requesters` and `break_glass.groups`."""

    sizes: dict[str, int]
    unbounded: set[str]

    def unknown(self, group: str) -> bool:
        return group not in self.sizes and group not in self.unbounded

    def requirement_problems(
        self, place: Place, requirements: list[RequirementSpec]
    ) -> list[Problem]:
        problems: list[Problem] = []
        for j, req in enumerate(requirements):
            where = (*place, j)
            if self.unknown(req.group):
                problems.append(Problem((*where, "group"), f"unknown group {req.group!r}"))
            elif req.group in [r.group for r in requirements[:j]]:
                problems.append(
                    Problem((*where, "group"), f"group {req.group!r} is required twice")
                )
            elif req.group not in self.unbounded and req.approvals > self.sizes[req.group]:
                size = self.sizes[req.group]
                problems.append(
                    Problem(
                        (*where, "approvals"),
                        f"{req.approvals} but group {req.group!r} has {size} "
                        f"member{'s' if size != 1 else ''}",
                    )
                )
        return problems

    def list_problems(self, place: Place, groups: list[str]) -> list[Problem]:
        problems: list[Problem] = []
        for j, group in enumerate(groups):
            if self.unknown(group):
                problems.append(Problem((*place, j), f"unknown group {group!r}"))
            elif group in groups[:j]:
                problems.append(Problem((*place, j), f"group {group!r} is listed twice"))
        return problems


def database_problems(spec: PolicyFile, *, other: PolicyNamer = _by_index) -> list[Problem]:
    """What the file asks that the database cannot give: unknown users or groups (required or
    requesting), more approvals than a group has members, two policies equally specific for one
    target (the other policy named by `other`).

    One checker per part of the file: its `groups` section, each policy's name, each policy's
    sections that name groups, and the ties between policies."""
    managed = managed_group_names()
    problems = _managed_groups_in_file(spec, managed) + _unknown_members(spec)
    groups = _known_groups(spec, managed)
    first_named: dict[str, int] = {}
    for i, policy in enumerate(spec.policies):
        problems += _duplicate_name(i, policy, first_named)
        problems += _group_section_problems(("policies", i), policy, groups)
    return problems + _ambiguities(spec.policies, other)


def _managed_groups_in_file(spec: PolicyFile, managed: set[str]) -> list[Problem]:
    """The file's `groups` may not set the members of a group the identity provider manages."""
    return [
        Problem(("groups", group), managed_message(group))
        for group in spec.groups
        if group in managed
    ]


def _unknown_members(spec: PolicyFile) -> list[Problem]:
    """Members of the file's `groups` who are not active users."""
    usernames = {name for members in spec.groups.values() for name in members}
    known = set(
        get_user_model()
        .objects.filter(username__in=usernames, is_active=True)
        .values_list("username", flat=True)
    )
    return [
        Problem(("groups", group, index), f"unknown user {username!r}")
        for group, members in spec.groups.items()
        for index, username in enumerate(members)
        if username not in known
    ]


def _known_groups(spec: PolicyFile, managed: set[str]) -> _KnownGroups:
    """The groups the policies may name: the file's own, the database's (with their active
    members counted, in one query), and the provider-managed ones."""
    sizes = {group: len(set(members)) for group, members in spec.groups.items()}
    named: set[str] = set()
    for policy in spec.policies:
        named.update(req.group for _, reqs in _requirement_lists(policy) for req in reqs)
        named.update(group for _, groups in _group_lists(policy) for group in groups)
    outside = named - sizes.keys()
    for known in Group.objects.filter(name__in=outside).prefetch_related("user_set"):
        sizes[known.name] = sum(1 for user in known.user_set.all() if user.is_active)
    # A managed group's members arrive as people sign in: it exists for the file whatever its
    # size today, in every section that names groups alike.
    return _KnownGroups(sizes, unbounded=(named - spec.groups.keys()) & managed)


def _duplicate_name(i: int, policy: PolicySpec, first_named: dict[str, int]) -> list[Problem]:
    """A policy named like an earlier one; `first_named` remembers where each name came first."""
    first = first_named.setdefault(policy.name, i)
    if first == i:
        return []
    return [
        Problem(
            ("policies", i, "name"),
            f"duplicate policy name {policy.name!r} (also policies[{first}])",
        )
    ]


def _group_section_problems(
    place: Place, policy: PolicySpec, groups: _KnownGroups
) -> list[Problem]:
    """Each section of `policy` that names groups, checked by the one rule for its kind."""
    problems: list[Problem] = []
    for section, requirements in _requirement_lists(policy):
        problems += groups.requirement_problems((*place, *section), requirements)
    for section, names in _group_lists(policy):
        problems += groups.list_problems((*place, *section), names)
    return problems


def policy_problems(spec: PolicySpec, others: list[PolicySpec]) -> list[Problem]:
    """The file checks for one policy saved on its own (the admin form), beside `others`.

    Targets, groups, approvals against members, and ties with the other policies (named by
    their names); locations are relative to the policy (`("require", 1, "approvals")`), and an
    empty one means the whole policy.
    """
    problems = [
        Problem(("targets", j), message)
        for j, target in enumerate(spec.targets)
        if (message := target_problem(target))
    ]
    # Checked as the last policy of a file holding every policy, keeping only its own problems.
    for problem in database_problems(PolicyFile(policies=[*others, spec]), other=_by_name):
        if (own := problem.within("policies", len(others))) is not None:
            problems.append(own)
    return problems


def _ambiguities(policies: list[PolicySpec], other: PolicyNamer) -> list[Problem]:
    """Two policies sharing a target whose patterns tie on specificity and can match one name.

    Overlap is decided on the same pattern, or on any model the mirror knows matching both.
    Only patterns of one target and one specificity are compared, and the names each glob
    matches are found once, so a file of many policies costs about what it holds; a file full
    of ties is reported by its first `MAX_TIES_REPORTED`.
    """
    names = list(RegisteredModel.objects.live().values_list("name", flat=True))
    matching: dict[str, list[str]] = {}
    # (target, specificity) -> {pattern: policy indices}: only patterns in one bucket can tie.
    buckets: dict[tuple[str, tuple[int, int]], dict[str, list[int]]] = {}
    for i, policy in enumerate(policies):
        for target in dict.fromkeys(policy.targets):
            for pattern in dict.fromkeys(policy.models):
                bucket = buckets.setdefault((target, specificity(pattern)), {})
                bucket.setdefault(pattern, []).append(i)
    ties: dict[tuple[int, int, str], str] = {}
    for (target, (is_exact, _)), bucket in buckets.items():
        # Who claims what: a pattern claims itself, a glob also the known names it matches;
        # each policy's first claim of a thing is its example.
        claims: dict[tuple[str, str], dict[int, str]] = {}
        for pattern, indices in bucket.items():
            for i in indices:
                claims.setdefault(("pattern", pattern), {}).setdefault(i, pattern)
            if is_exact or len({i for indices in bucket.values() for i in indices}) < 2:
                continue
            if pattern not in matching:
                found = re.compile(fnmatch.translate(pattern)).match
                matching[pattern] = [name for name in names if found(name)]
            for name in matching[pattern]:
                for i in indices:
                    claims.setdefault(("name", name), {}).setdefault(i, pattern)
        for (_, value), claimants in claims.items():
            ordered = sorted(claimants.items())
            for a, (j, q) in enumerate(ordered):
                for i, p in ordered[a + 1 :]:
                    if (i, j, target) in ties:
                        continue
                    ties[i, j, target] = p if p == q else f"{p!r} and {q!r}, e.g. {value!r}"
                    if len(ties) >= MAX_TIES_REPORTED:
                        return _tie_problems(policies, ties, other) + [
                            Problem(
                                (),
                                f"more policies tie than the first {MAX_TIES_REPORTED} listed here",
                            )
                        ]
    return _tie_problems(policies, ties, other)


def _tie_problems(
    policies: list[PolicySpec], ties: dict[tuple[int, int, str], str], other: PolicyNamer
) -> list[Problem]:
    return [
        Problem(
            ("policies", i),
            f"as specific as {other(policies, j)} for models {example} and target {target}",
        )
        for (i, j, target), example in sorted(ties.items())
    ]
