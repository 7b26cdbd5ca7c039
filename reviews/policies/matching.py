"""Which policy decides a request: the most specific policy covering a (model, target), and a
policy row read back as the spec it was saved from.

Policies are matched on the model's name (exact names beat globs; among globs, the longer literal
prefix wins) and on the target. Two policies equally specific for one (model, target) are refused
when a file is loaded (`reviews.policies.database_checks`); one that slipped through decides
nothing (`AmbiguousPolicy`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.db.models import Prefetch, QuerySet

from ..errors import AmbiguousPolicy, NoPolicy
from ..models import ApprovalPolicy, PolicyRequester, PolicyRequirement
from .spec import (
    BreakGlassSpec,
    EscalationSpec,
    EvidenceGateSpec,
    GateSpec,
    OutOfBandChoice,
    PolicySpec,
    RequirementSpec,
    RollbackSpec,
)

GLOB_CHARS = "*?["


def with_relations(policies: QuerySet) -> QuerySet:
    """`policies` with what `policy_as_spec` reads, in one query per relation."""
    return policies.prefetch_related(
        Prefetch("requirements", queryset=PolicyRequirement.objects.select_related("group")),
        Prefetch("requesters", queryset=PolicyRequester.objects.select_related("group")),
        "gates",
    )


def policy_as_spec(policy: ApprovalPolicy) -> PolicySpec:
    return PolicySpec(
        name=policy.name,
        models=list(policy.model_patterns),
        targets=list(policy.targets),
        require=[
            RequirementSpec(group=r.group.name, approvals=r.approvals)
            for r in policy.requirements.all()
        ],
        allow_self_approval=policy.allow_self_approval,
        expires_after=policy.expires_after,
        archive_existing=policy.archive_existing,
        rejections_needed=policy.rejections_needed,
        out_of_band=cast(OutOfBandChoice, policy.out_of_band),  # the choices of its column
        gates=[
            # As stored, not validated again: a threshold written before non-finite ones were
            # refused must still read (and export), not break every page that shows the policy.
            GateSpec.model_construct(
                metric=g.metric,
                op=g.op,
                value=g.value,
                baseline_delta=g.baseline_delta,
                kind=g.kind,
            )
            for g in policy.gates.all()
        ],
        requesters=[r.group.name for r in policy.requesters.all()],
        rollback=RollbackSpec.model_validate(policy.rollback) if policy.rollback else None,
        break_glass=(
            BreakGlassSpec.model_validate(policy.break_glass) if policy.break_glass else None
        ),
        # As stored, like the gates: validated when they were saved.
        escalate=[
            EscalationSpec.model_construct(
                when=rule["when"],
                require=[RequirementSpec.model_construct(**r) for r in rule["require"]],
                tolerance=rule.get("tolerance"),
            )
            for rule in (policy.evidence_rules or {}).get("escalate", [])
        ],
        evidence_gates=[
            EvidenceGateSpec.model_construct(**gate)
            for gate in (policy.evidence_rules or {}).get("evidence_gates", [])
        ],
    )


# -- matching ----------------------------------------------------------------------------------


def policies_loaded() -> list[ApprovalPolicy]:
    """Every policy with its requirements and gates, for matching many targets in one go."""
    return list(with_relations(ApprovalPolicy.objects.all()))


@dataclass(frozen=True)
class Match:
    """A policy covering a (model, target): the pattern that matched best, and its score."""

    policy: Any
    pattern: str
    score: tuple[int, int]

    @property
    def why(self) -> str:
        """Why this pattern ranks where it does, in words."""
        if self.score[0]:
            return f"names the model exactly ({self.pattern!r})"
        return (
            f"matches it with the glob {self.pattern!r} ({self.score[1]} literal characters first)"
        )


def matches(
    model_name: str,
    target: str,
    policies: Iterable[Any],
    patterns: Callable[[Any], Iterable[str]] = lambda p: p.model_patterns,
) -> list[Match]:
    """Every policy among `policies` covering (model, target), the most specific first.

    `patterns` reads a policy's model globs: a stored policy's `model_patterns`, or a file's
    `PolicySpec.models` (`quorum policy test` matches the file's policies the same way).
    """
    found = []
    for policy in policies:
        if target not in policy.targets:
            continue
        scored = [
            (specificity(p), p) for p in patterns(policy) if fnmatch.fnmatchcase(model_name, p)
        ]
        if scored:
            score, pattern = max(scored)
            found.append(Match(policy=policy, pattern=pattern, score=score))
    found.sort(key=lambda match: match.score, reverse=True)
    return found


def deciding_match(model_name: str, target: str, found: list[Match]) -> Match:
    """The match that decides among `found` (from `matches`): raises `NoPolicy` when there is
    none and `AmbiguousPolicy` when the two most specific tie."""
    if not found:
        raise NoPolicy(
            f"No approval policy covers {model_name} → {target}, so it cannot be requested. "
            "Ask an admin to add one."
        )
    if len(found) > 1 and found[0].score == found[1].score:
        raise AmbiguousPolicy(
            f"Policies {found[0].policy.name!r} and {found[1].policy.name!r} are equally "
            f"specific for {model_name} → {target}; an admin must make one of them more specific."
        )
    return found[0]


def policy_for(
    model_name: str, target: str, *, policies: list[ApprovalPolicy] | None = None
) -> ApprovalPolicy:
    """The most specific policy covering (model, target), among `policies` when given.

    Raises `NoPolicy` when none covers it and `AmbiguousPolicy` when two tie.
    """
    found = matches(model_name, target, policies if policies is not None else policies_loaded())
    return deciding_match(model_name, target, found).policy


def specificity(pattern: str) -> tuple[int, int]:
    """Exact names beat globs; among globs, a longer literal prefix beats a shorter one."""
    cut = min((pattern.index(c) for c in GLOB_CHARS if c in pattern), default=None)
    if cut is None:
        return (1, len(pattern))
    return (0, cut)
