"""What a version may be requested for: each target some policy covers, the policy that would
decide, who may request it, the version holding it now and a preview of the gates.

The version page's "Request promotion" card and the promotion form's own page both show it; the
engine (`reviews.decisions.opening.request_create`) decides again when the request is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import User

from registry.models import ModelVersion, Stage
from registry.targets import Target

from ..errors import AmbiguousPolicy, NoPolicy
from ..models import ApprovalPolicy, RequestKind, TransitionRequest
from ..policies.matching import policies_loaded, policy_as_spec, policy_for
from . import gates, opening, related
from .sizing import Sizing, escalation_words, requirement_words, size


@dataclass
class TargetOption:
    """One target a version might be requested for, and what a request would get there."""

    target: str
    policy: ApprovalPolicy | None = None
    spec: dict = field(default_factory=dict)
    baseline: ModelVersion | None = None
    gates: list[gates.GateResult] = field(default_factory=list)
    # Why it cannot be requested now ("already here", an open request, two tied policies).
    unavailable: str = ""
    open_request: TransitionRequest | None = None
    # Earlier rejections of this version for this target, newest first: a new request must
    # answer them (`reviews.decisions.related`).
    rejections: list[TransitionRequest] = field(default_factory=list)
    # Open requests of the model's other versions for this target.
    open_others: list[TransitionRequest] = field(default_factory=list)

    @property
    def rejection_words(self) -> str:
        return related.rejection_words(self.rejections[0]) if self.rejections else ""

    # What a request would take (`reviews.decisions.sizing`), once it can be requested.
    sizing: Sizing | None = None

    @property
    def requirements(self) -> str:
        if self.sizing is not None:
            raised = self.sizing.escalations
            why = f" ({escalation_words(raised)})" if raised else ""
            return self.sizing.needs + why + self.leaves_words
        return requirement_words(self.spec["require"])

    @property
    def leaves_words(self) -> str:
        leaves = self.sizing.leaves if self.sizing is not None else None
        if not leaves:
            return ""
        return (
            f" (with {requirement_words(leaves['require'])}: it takes the version out of "
            f"{leaves['target']}, which the policy {leaves['policy']!r} protects)"
        )

    @property
    def expires_after(self) -> str:
        """The expiry in words: "7 days", "12 hours", "1 day 12 hours"."""
        if self.policy is None:
            return ""
        minutes = int(self.policy.expires_after.total_seconds() // 60)
        days, minutes = divmod(minutes, 24 * 60)
        hours, minutes = divmod(minutes, 60)
        parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
        return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)

    @property
    def rejected_at_once(self) -> bool:
        return bool(gates.required_failures(self.gates))

    @property
    def approved_at_once(self) -> bool:
        return self.sizing is not None and self.sizing.approved_at_once


def _target_order(target: str) -> tuple[int, str]:
    stages: list[str] = [Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED, Stage.NONE]
    if target in stages:
        return (stages.index(target), "")
    return (len(stages), target)


def target_options(
    *,
    version: ModelVersion,
    user: User | None = None,
    policies: list[ApprovalPolicy] | None = None,
    neighbours: related.ForVersion | None = None,
) -> list[TargetOption]:
    """Every stage and alias some policy covers for this version's model, in a stable order;
    those `user` may not request (the policy names other requester groups) are unavailable.
    A deleted version can go nowhere: none, without a query.

    `version.model` must be loaded. `policies`: `policies_loaded()`, and `neighbours`:
    `related.for_version(version)`, when the caller has them already. Costs the policies'
    queries once (and the user's groups once, when a policy names requesters), one for the
    version's own and related requests, then at most one query per target for its
    current holder (an alias held by a stage's holder costs none): bounded by the policy set, not
    by the registry.
    """
    if version.deleted:
        return []
    model = version.model
    if policies is None:
        policies = policies_loaded()
    groups: set[str] = set()
    if user is not None and any(p.requesters.all() for p in policies):
        groups = set(user.groups.values_list("name", flat=True))
    named = {target for policy in policies for target in policy.targets}
    if neighbours is None:
        neighbours = related.for_version(version)
    open_requests = neighbours.open_own
    # Holders read so far, by number: an alias (@champion) is often held by a stage's holder,
    # and the stages come first.
    holders: dict[int, ModelVersion] = {}

    def holder(target: str) -> ModelVersion | None:
        parsed = Target.parse(target)
        if parsed.is_alias and model.aliases.get(parsed.alias) in holders:
            return holders[model.aliases[parsed.alias]]
        found = opening.target_holder(model, target, exclude=version.pk)
        if found is not None:
            holders[found.version] = found
        return found

    options = []
    for target in sorted(named, key=_target_order):
        try:
            policy = policy_for(model.name, target, policies=policies)
        except NoPolicy:
            continue
        except AmbiguousPolicy as error:
            options.append(TargetOption(target=target, unavailable=str(error)))
            continue
        option = TargetOption(
            target=target,
            policy=policy,
            spec=policy_as_spec(policy).model_dump(mode="json"),
            rejections=neighbours.rejections.get(target, []),
            open_others=neighbours.open_others.get(target, []),
        )
        refusal = None
        if user is not None:
            refusal = opening.requester_refusal(
                user, option.spec["requesters"], target=target, groups=groups
            )
        if opening.is_at_target(version, target):
            option.unavailable = f"v{version.version} is already at {target}."
        elif refusal:
            option.unavailable = refusal
        elif target in open_requests:
            option.open_request = open_requests[target]
            option.unavailable = f"Request #{option.open_request.pk} for {target} is still open."
        else:
            option.baseline = holder(target)
            # Sized as the request will be: escalations and a protected target left included.
            option.sizing = size(
                policy=policy,
                kind=RequestKind.PROMOTION,
                candidate=version,
                baseline=option.baseline,
                target=target,
                policies=policies,
            )
            option.gates = option.sizing.results
        options.append(option)
    return options
