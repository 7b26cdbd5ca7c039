"""Approval policies as code: loading a policy file into the database, and exporting one.

A policy file is the whole truth about approver groups' members and policies: loading it creates,
changes and removes policies so the database says what the file says, in one transaction, after
validating everything first (`reviews.policies.spec`, `reviews.policies.database_checks`).
Groups managed by the identity provider are the exception: policies name them, but their members
come from sign-ins, not from the file. Which policy decides a request is
`reviews.policies.matching`.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Prefetch

from identity.mapping import managed_group_names
from identity.membership import managed_groups_ensure

from ..audit import chain
from ..errors import PolicyInvalid
from ..models import ApprovalPolicy, OutOfBand, PolicyGate, PolicyRequester, PolicyRequirement
from .database_checks import database_problems
from .distinct import shortfall
from .matching import policy_as_spec, with_relations
from .spec import PolicyFile, PolicySpec, format_duration, parse_policy_file


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    groups_created: list[str] = field(default_factory=list)
    groups_changed: list[str] = field(default_factory=list)
    # Loaded all the same: required groups that share members (see `overlap_warnings`).
    warnings: list[str] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        """Whether the load created, changed or removed a policy or a group."""
        return any(
            (self.created, self.changed, self.removed, self.groups_created, self.groups_changed)
        )

    def lines(self) -> list[str]:
        out: list[str] = []
        for label, names in (
            ("created group", self.groups_created),
            ("changed group", self.groups_changed),
            ("created policy", self.created),
            ("changed policy", self.changed),
            ("removed policy", self.removed),
        ):
            out.extend(f"{label} {name}" for name in names)
        out.append(
            f"{len(self.created)} created, {len(self.changed)} changed, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged"
        )
        return out


def policies_load(
    *, text: str, dry_run: bool = False, actor="system", source: str = ""
) -> LoadReport:
    """Makes the database say what the policy file says, all or nothing.

    Raises `PolicyInvalid` with every problem before anything is written. With `dry_run` the
    report says what would change and nothing does. A load that changes anything is audited
    (`policy.load`, with the file's SHA-256 so the exact file can be found in git).
    """
    spec = parse_policy_file(text)
    problems = database_problems(spec)
    if problems:
        raise PolicyInvalid(problems)
    with transaction.atomic():
        report = _apply(spec)
        # The file is the whole truth: its policies are now all there are.
        report.warnings = overlap_warnings(with_relations(ApprovalPolicy.objects.all()))
        if dry_run:
            transaction.set_rollback(True)
        elif report.changed_anything:
            chain.record(
                "policy.load",
                actor=actor,
                details={
                    "source": source,
                    "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    "created": report.created,
                    "changed": report.changed,
                    "removed": report.removed,
                    "groups_created": report.groups_created,
                    "groups_changed": report.groups_changed,
                },
            )
    return report


def _apply(spec: PolicyFile) -> LoadReport:
    report = LoadReport()
    User = get_user_model()
    managed_groups_ensure()  # policies may name them before anyone from them signed in
    for name, members in spec.groups.items():
        group, created = Group.objects.get_or_create(name=name)
        wanted = set(User.objects.filter(username__in=members))
        current = set(group.user_set.all())
        if created:
            report.groups_created.append(name)
        elif wanted != current:
            report.groups_changed.append(name)
        group.user_set.set(wanted)

    existing = {p.name: p for p in with_relations(ApprovalPolicy.objects.all())}
    for policy_spec in spec.policies:
        policy = existing.pop(policy_spec.name, None)
        if policy is None:
            policy = ApprovalPolicy(name=policy_spec.name)
            report.created.append(policy_spec.name)
        elif policy_as_spec(policy) == policy_spec:
            report.unchanged.append(policy_spec.name)
            continue
        else:
            report.changed.append(policy_spec.name)
        save_policy(policy, policy_spec)
    for name, policy in existing.items():
        policy.delete()
        report.removed.append(name)
    return report


def save_policy(policy: ApprovalPolicy, spec: PolicySpec) -> ApprovalPolicy:
    """Writes a validated spec onto a policy row, replacing its requirements, requesters and
    gates."""
    policy.model_patterns = list(spec.models)
    policy.targets = list(spec.targets)
    policy.allow_self_approval = spec.allow_self_approval
    policy.expires_after = spec.expires_after
    policy.archive_existing = spec.archive_existing
    policy.rejections_needed = spec.rejections_needed
    policy.rollback = spec.rollback.as_document() if spec.rollback else None
    policy.break_glass = spec.break_glass.as_document() if spec.break_glass else None
    policy.out_of_band = spec.out_of_band
    policy.evidence_rules = {
        "escalate": [rule.model_dump(mode="json", exclude_none=True) for rule in spec.escalate],
        "evidence_gates": [gate.model_dump(mode="json") for gate in spec.evidence_gates],
    }
    policy.save()
    policy.requirements.all().delete()
    policy.gates.all().delete()
    named = [r.group for r in spec.require] + spec.requesters
    groups = {g.name: g for g in Group.objects.filter(name__in=named)}
    PolicyRequirement.objects.bulk_create(
        PolicyRequirement(policy=policy, group=groups[r.group], approvals=r.approvals, position=i)
        for i, r in enumerate(spec.require)
    )
    set_requesters(policy, [groups[name] for name in spec.requesters])
    PolicyGate.objects.bulk_create(
        PolicyGate(
            policy=policy,
            metric=g.metric,
            op=g.op,
            value=g.value,
            baseline_delta=g.baseline_delta,
            kind=g.kind,
            position=i,
        )
        for i, g in enumerate(spec.gates)
    )
    return policy


def set_requesters(policy: ApprovalPolicy, groups: list[Group]) -> None:
    """Replaces the groups whose members may request under `policy` (none: anyone signed in)."""
    policy.requesters.all().delete()
    PolicyRequester.objects.bulk_create(
        PolicyRequester(policy=policy, group=group, position=i) for i, group in enumerate(groups)
    )


def overlap_warnings(policies: Iterable[ApprovalPolicy]) -> list[str]:
    """One sentence per policy whose required groups share members, naming the groups and the
    people: each person counts for one group only (`reviews.policies.distinct`), so such a policy
    needs more different people than its groups' sizes suggest, or cannot be met at all.

    A warning, not a refusal: overlapping groups are legitimate, and membership changes. Reads
    `policies` loaded `with_relations`, and their groups' active members in one query.
    """
    policies = list(policies)
    named = {r.group.name for p in policies for r in p.requirements.all()}
    members = {
        group.name: {user.get_username() for user in group.user_set.all()}
        for group in Group.objects.filter(name__in=named).prefetch_related(
            Prefetch("user_set", queryset=get_user_model().objects.filter(is_active=True))
        )
    }
    warnings = []
    for policy in policies:
        needs = [(r.group.name, r.approvals) for r in policy.requirements.all()]
        shared = [
            f"{a} and {b} share {', '.join(sorted(common))}"
            for (a, _), (b, _) in itertools.combinations(needs, 2)
            if (common := members.get(a, set()) & members.get(b, set()))
        ]
        if not shared:
            continue
        total = sum(n for _, n in needs)
        warning = (
            f"policy {policy.name!r}: {'; '.join(shared)}. A person counts for one group "
            f"only, so its sign-offs need {total} different people"
        )
        if missing := shortfall(needs, members):
            warning += (
                f", and their members can fill only {total - missing} of those places (no "
                "request can reach quorum until the groups change)"
            )
        warnings.append(warning + ".")
    return warnings


def policies_export() -> str:
    """The database's groups and policies in the format `policies_load` reads (lossless)."""
    policies = with_relations(ApprovalPolicy.objects.all())
    used = {r.group.name for p in policies for r in p.requirements.all()}
    used |= {r.group.name for p in policies for r in p.requesters.all()}
    # The provider's groups are named by policies but their members are not the file's to set.
    managed = sorted(used & managed_group_names())
    used -= set(managed)
    groups = Group.objects.filter(name__in=used).prefetch_related("user_set").order_by("name")
    document = {
        "groups": {
            g.name: sorted(u.username for u in g.user_set.all() if u.is_active) for g in groups
        },
        "policies": [_policy_document(p) for p in policies],
    }
    header = "".join(
        f"# {name}: members come from the identity provider (QUORUM_OIDC_GROUP_MAP)\n"
        for name in managed
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _policy_document(policy: ApprovalPolicy) -> dict:
    spec = policy_as_spec(policy)
    document = {
        "name": spec.name,
        "models": spec.models,
        "targets": spec.targets,
        "require": [{"group": r.group, "approvals": r.approvals} for r in spec.require],
        "allow_self_approval": spec.allow_self_approval,
        "expires_after": format_duration(spec.expires_after),
        "archive_existing": spec.archive_existing,
        "rejections_needed": spec.rejections_needed,
    }
    if spec.out_of_band != OutOfBand.FLAG:  # the default stays implicit, as files write it
        document["out_of_band"] = spec.out_of_band
    if spec.requesters:
        document["requesters"] = spec.requesters
    if spec.rollback:
        document["rollback"] = spec.rollback.as_document()
    if spec.break_glass:
        document["break_glass"] = spec.break_glass.as_document()
    if spec.escalate:
        document["escalate"] = [
            rule.model_dump(mode="json", exclude_none=True) for rule in spec.escalate
        ]
    if spec.evidence_gates:
        document["evidence_gates"] = [g.model_dump(mode="json") for g in spec.evidence_gates]
    if spec.gates:
        document["gates"] = [
            {
                "metric": g.metric,
                "op": g.op,
                **({"value": g.value} if g.value is not None else {}),
                **({"baseline_delta": g.baseline_delta} if g.baseline_delta is not None else {}),
                "kind": g.kind,
            }
            for g in spec.gates
        ]
    return document
