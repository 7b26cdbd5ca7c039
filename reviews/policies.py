"""Approval policies as code: the YAML file format, its validation, loading, export and matching.

A policy file is the whole truth about approver groups' members and policies: loading it creates,
changes and removes policies so the database says what the file says, in one transaction, after
validating everything first. Every problem is reported as `place: problem`, the place written the
way a person finds it in the file (`policies[0].require[1].group`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Literal

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from registry.models import RegisteredModel, Stage

from . import audit
from .errors import AmbiguousPolicy, NoPolicy, PolicyInvalid
from .models import ApprovalPolicy, PolicyGate, PolicyRequirement

STAGES = [choice.value for choice in Stage]
# MLflow's alias rule: letters, digits, _ and -, and not a reserved name.
ALIAS_RE = re.compile(r"^@[A-Za-z0-9_-]{1,255}$")
RESERVED_ALIASES = re.compile(r"^@(latest|v\d+)$", re.IGNORECASE)
DURATION_RE = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
GLOB_CHARS = "*?["


# -- the file format ---------------------------------------------------------------------------


def _a_list(value, what: str):
    if isinstance(value, str):
        raise ValueError(f"must be a list of {what}, got a string")
    return value


class RequirementSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: str = Field(min_length=1)
    approvals: int = Field(default=1, ge=1)


class GateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1)
    op: Literal[">=", ">", "<=", "<", "=="]
    value: float | None = None
    baseline_delta: float | None = None
    kind: Literal["required", "auto_approve"] = "required"

    @model_validator(mode="after")
    def one_threshold(self):
        if (self.value is None) == (self.baseline_delta is None):
            raise ValueError("give exactly one of value (a fixed threshold) or baseline_delta")
        return self


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    models: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    targets: list[str] = Field(min_length=1)
    require: list[RequirementSpec] = Field(min_length=1)
    allow_self_approval: bool = False
    expires_after: timedelta = timedelta(days=7)
    archive_existing: bool = False
    rejections_needed: int = Field(default=1, ge=1)
    gates: list[GateSpec] = []

    @field_validator("models", mode="before")
    @classmethod
    def models_is_a_list(cls, value):
        return _a_list(value, "model name globs")

    @field_validator("targets", mode="before")
    @classmethod
    def targets_is_a_list(cls, value):
        return _a_list(value, "stages or @aliases")

    @field_validator("require", "gates", mode="before")
    @classmethod
    def require_is_a_list(cls, value):
        return _a_list(value, "mappings")

    @field_validator("expires_after", mode="before")
    @classmethod
    def parse_duration(cls, value):
        if isinstance(value, timedelta):
            return value
        match = DURATION_RE.match(str(value))
        if not match or int(match.group(1)) == 0:
            raise ValueError(f"{value!r} is not a duration like 7d, 12h or 30m")
        return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


Usernames = Annotated[
    list[Annotated[str, Field(min_length=1)]],
    BeforeValidator(lambda value: _a_list(value, "usernames")),
]


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: dict[str, Usernames] = {}
    policies: list[PolicySpec] = []

    @field_validator("groups", "policies", mode="before")
    @classmethod
    def empty_is_none(cls, value, info):
        if value is None:
            return {} if info.field_name == "groups" else []
        return value


def target_problem(target: str) -> str | None:
    """Why `target` is not something a request can aim at, or None when it is fine."""
    if target in STAGES:
        return None
    if target.startswith("@") and ALIAS_RE.match(target) and not RESERVED_ALIASES.match(target):
        return None
    return f"{target!r} is not a stage ({', '.join(STAGES)}) or an @alias"


def format_duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _place(loc: tuple) -> str:
    place = ""
    for part in loc:
        if isinstance(part, int):
            place += f"[{part}]"
        else:
            place += f".{part}" if place else str(part)
    return place


def parse_policy_file(text: str) -> PolicyFile:
    """The file's content as a `PolicyFile`, or `PolicyInvalid` listing every problem found."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyInvalid([f"not valid YAML: {error}"]) from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyInvalid(["the file must be a mapping with `groups` and `policies`"])
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(f"{_place(item['loc'])}: {message}")
        raise PolicyInvalid(problems) from error
    problems = [
        f"policies[{i}].targets[{j}]: {problem}"
        for i, policy in enumerate(spec.policies)
        for j, target in enumerate(policy.targets)
        if (problem := target_problem(target))
    ]
    if problems:
        raise PolicyInvalid(problems)
    return spec


# -- validation against the database -----------------------------------------------------------


def database_problems(spec: PolicyFile) -> list[str]:
    """What the file asks that the database cannot give: unknown users or groups, more
    approvals than a group has members, two policies equally specific for one target."""
    problems: list[str] = []
    usernames = {name for members in spec.groups.values() for name in members}
    User = get_user_model()
    known_users = set(
        User.objects.filter(username__in=usernames, is_active=True).values_list(
            "username", flat=True
        )
    )
    for group, members in spec.groups.items():
        for index, username in enumerate(members):
            if username not in known_users:
                problems.append(f"groups.{group}[{index}]: unknown user {username!r}")
    sizes = {group: len(set(members)) for group, members in spec.groups.items()}
    outside = {
        req.group for policy in spec.policies for req in policy.require if req.group not in sizes
    }
    for group in Group.objects.filter(name__in=outside).prefetch_related("user_set"):
        sizes[group.name] = sum(1 for user in group.user_set.all() if user.is_active)

    seen_names: dict[str, int] = {}
    for i, policy in enumerate(spec.policies):
        if policy.name in seen_names:
            problems.append(
                f"policies[{i}].name: duplicate policy name {policy.name!r} "
                f"(also policies[{seen_names[policy.name]}])"
            )
        seen_names.setdefault(policy.name, i)
        groups_seen: set[str] = set()
        for j, req in enumerate(policy.require):
            place = f"policies[{i}].require[{j}]"
            if req.group not in sizes:
                problems.append(f"{place}.group: unknown group {req.group!r}")
                continue
            if req.group in groups_seen:
                problems.append(f"{place}.group: group {req.group!r} is required twice")
            groups_seen.add(req.group)
            if req.approvals > sizes[req.group]:
                problems.append(
                    f"{place}.approvals: {req.approvals} but group {req.group!r} has "
                    f"{sizes[req.group]} member{'s' if sizes[req.group] != 1 else ''}"
                )
    problems.extend(_ambiguities(spec.policies))
    return problems


def policy_problems(spec: PolicySpec, others: list[PolicySpec]) -> list[str]:
    """The file checks for one policy saved on its own (the admin form), beside `others`.

    Targets, groups, approvals against members, and ties with the other policies; places are
    relative to the policy (`require[1].approvals`), and an empty place means the whole policy.
    """
    problems = [
        f"targets[{j}]: {problem}"
        for j, target in enumerate(spec.targets)
        if (problem := target_problem(target))
    ]
    # Checked as the last policy of a file holding every policy, keeping only its own problems.
    prefix = f"policies[{len(others)}]"
    for problem in database_problems(PolicyFile(policies=[*others, spec])):
        place, _, message = problem.partition(": ")
        if place == prefix or place.startswith(prefix + "."):
            # A file index means nothing in a form: name the other policy instead.
            message = re.sub(r"policies\[\d+\] \((.*?)\)", r"policy \1", message)
            problems.append(f"{place.removeprefix(prefix).removeprefix('.')}: {message}")
    return problems


def specificity(pattern: str) -> tuple[int, int]:
    """Exact names beat globs; among globs, a longer literal prefix beats a shorter one."""
    cut = min((pattern.index(c) for c in GLOB_CHARS if c in pattern), default=None)
    if cut is None:
        return (1, len(pattern))
    return (0, cut)


def _ambiguities(policies: list[PolicySpec]) -> list[str]:
    """Two policies sharing a target whose patterns tie on specificity and can match one name.

    Overlap is decided on the same pattern, or on any model the mirror knows matching both.
    """
    problems = []
    names = list(RegisteredModel.objects.live().values_list("name", flat=True))
    for i, first in enumerate(policies):
        for j in range(i):
            second = policies[j]
            for target in sorted(set(first.targets) & set(second.targets)):
                for p in first.models:
                    for q in second.models:
                        if specificity(p) != specificity(q):
                            continue
                        both = p == q or next(
                            (
                                n
                                for n in names
                                if fnmatch.fnmatchcase(n, p) and fnmatch.fnmatchcase(n, q)
                            ),
                            None,
                        )
                        if both:
                            example = p if p == q else f"{p!r} and {q!r}, e.g. {both!r}"
                            problems.append(
                                f"policies[{i}]: as specific as policies[{j}] "
                                f"({second.name!r}) for models {example} and target {target}"
                            )
    return problems


# -- loading and exporting ---------------------------------------------------------------------


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    groups_created: list[str] = field(default_factory=list)
    groups_changed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
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
        if dry_run:
            transaction.set_rollback(True)
        elif report.lines()[:-1]:  # the last line is the count summary
            audit.record(
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
    for name, members in spec.groups.items():
        group, created = Group.objects.get_or_create(name=name)
        wanted = set(User.objects.filter(username__in=members))
        current = set(group.user_set.all())
        if created:
            report.groups_created.append(name)
        elif wanted != current:
            report.groups_changed.append(name)
        group.user_set.set(wanted)

    existing = {
        p.name: p for p in ApprovalPolicy.objects.prefetch_related("requirements__group", "gates")
    }
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
    """Writes a validated spec onto a policy row, replacing its requirements and gates."""
    policy.model_patterns = list(spec.models)
    policy.targets = list(spec.targets)
    policy.allow_self_approval = spec.allow_self_approval
    policy.expires_after = spec.expires_after
    policy.archive_existing = spec.archive_existing
    policy.rejections_needed = spec.rejections_needed
    policy.save()
    policy.requirements.all().delete()
    policy.gates.all().delete()
    groups = {g.name: g for g in Group.objects.filter(name__in=[r.group for r in spec.require])}
    PolicyRequirement.objects.bulk_create(
        PolicyRequirement(policy=policy, group=groups[r.group], approvals=r.approvals, position=i)
        for i, r in enumerate(spec.require)
    )
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
        gates=[
            GateSpec(
                metric=g.metric,
                op=g.op,
                value=g.value,
                baseline_delta=g.baseline_delta,
                kind=g.kind,
            )
            for g in policy.gates.all()
        ],
    )


def policies_export() -> str:
    """The database's groups and policies in the format `policies_load` reads (lossless)."""
    policies = ApprovalPolicy.objects.prefetch_related("requirements__group", "gates")
    used = {r.group.name for p in policies for r in p.requirements.all()}
    groups = Group.objects.filter(name__in=used).prefetch_related("user_set").order_by("name")
    document = {
        "groups": {
            g.name: sorted(u.username for u in g.user_set.all() if u.is_active) for g in groups
        },
        "policies": [_policy_document(p) for p in policies],
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


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


# -- matching ----------------------------------------------------------------------------------


def policies_loaded() -> list[ApprovalPolicy]:
    """Every policy with its requirements and gates, for matching many targets in one go."""
    return list(ApprovalPolicy.objects.prefetch_related("requirements__group", "gates"))


def policy_for(
    model_name: str, target: str, *, policies: list[ApprovalPolicy] | None = None
) -> ApprovalPolicy:
    """The most specific policy covering (model, target), among `policies` when given.

    Raises `NoPolicy` when none covers it and `AmbiguousPolicy` when two tie.
    """
    best: list[tuple[tuple[int, int], ApprovalPolicy]] = []
    for policy in policies if policies is not None else policies_loaded():
        if target not in policy.targets:
            continue
        scores = [
            specificity(p) for p in policy.model_patterns if fnmatch.fnmatchcase(model_name, p)
        ]
        if scores:
            best.append((max(scores), policy))
    if not best:
        raise NoPolicy(
            f"No approval policy covers {model_name} → {target}, so it cannot be requested. "
            "Ask an admin to add one."
        )
    best.sort(key=lambda item: item[0], reverse=True)
    if len(best) > 1 and best[0][0] == best[1][0]:
        raise AmbiguousPolicy(
            f"Policies {best[0][1].name!r} and {best[1][1].name!r} are equally specific for "
            f"{model_name} → {target}; an admin must make one of them more specific."
        )
    return best[0][1]
