"""The policy file format and its validation: what a policy says, and every way it can be wrong.

Every problem is a `Problem`: its location as data (`("policies", 0, "require", 1, "group")`) and
its message, written `policies[0].require[1].group: message` only where a person reads it (the
`load_policies` command, the admin's forms). The same checks run when `reviews.policies` loads a
file and when an admin saves a policy in the admin.

Limits, each refused with its place: the file's own (size, keys given twice, aliases) in
`reviews.policy_yaml`; durations up to `MAX_DURATION`, finite thresholds, and names and counts
the database can store here.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from identity.mapping import managed_group_names, managed_message
from registry.models import RegisteredModel
from registry.targets import InvalidTarget, Target

from .errors import PolicyInvalid, Problem
from .policy_yaml import read_yaml

DURATION_RE = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
DURATION_MINUTES = {"d": 24 * 60, "h": 60, "m": 1}
# A request must be able to expire: years-long durations overflow dates, and nobody waits a year
# for a sign-off.
MAX_DURATION = timedelta(days=365)
# What the database stores: auth groups' and users' names, gate metrics, approvals counts (a
# small integer). The limits only keep a load from failing inside the database: a policy stored
# under them is never refused when it is read back.
GROUP_NAME_MAX = 150
USERNAME_MAX = 150
PATTERN_MAX = 256
METRIC_MAX = 250
COUNT_MAX = 32767
# Ties between policies reported before giving up on a file full of them.
MAX_TIES_REPORTED = 50
GLOB_CHARS = "*?["


# -- the file format ---------------------------------------------------------------------------


def _a_list(value, what: str):
    if isinstance(value, str):
        raise ValueError(f"must be a list of {what}, got a string")
    return value


# What a policy does about a move of a covered target made in MLflow directly (`reviews.reverts`).
OutOfBandChoice = Literal["flag", "revert"]

# A policy's list fields, and what each holds (for "must be a list of ..., got a string").
LIST_FIELDS = {
    "models": "model name globs",
    "targets": "stages or @aliases",
    "require": "mappings",
    "gates": "mappings",
    "requesters": "group names",
    "escalate": "mappings",
    "evidence_gates": "mappings",
}

# What the evidence packet may show (registry.evidence.FLAGS), and the fast path.
EvidenceFlag = Literal[
    "signature_breaking", "signature_changed", "requirements_changed", "dataset_changed"
]


GroupName = Annotated[str, Field(min_length=1, max_length=GROUP_NAME_MAX)]
# NaN compares false with everything and infinity with nearly everything: a gate on either would
# pass or fail whatever the model's metrics.
Threshold = Annotated[float, Field(allow_inf_nan=False)]


class RequirementSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: GroupName
    approvals: int = Field(default=1, ge=1, le=COUNT_MAX)


class GateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1, max_length=METRIC_MAX)
    op: Literal[">=", ">", "<=", "<", "=="]
    value: Threshold | None = None
    baseline_delta: Threshold | None = None
    kind: Literal["required", "auto_approve"] = "required"

    @model_validator(mode="after")
    def one_threshold(self):
        if (self.value is None) == (self.baseline_delta is None):
            raise ValueError("give exactly one of value (a fixed threshold) or baseline_delta")
        return self


def _duration(value):
    """A duration as written in a file or the admin ("7d", "12h", "30m"), up to
    `MAX_DURATION`. A timedelta (a policy already stored) is taken as it is."""
    if isinstance(value, timedelta):
        return value
    match = DURATION_RE.match(str(value))
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration like 7d, 12h or 30m")
    # Compared as a number first: a timedelta of 9999999999 days does not exist.
    minutes = int(match.group(1)) * DURATION_MINUTES[match.group(2)]
    if minutes > MAX_DURATION.total_seconds() // 60:
        raise ValueError(
            f"{value!r} is longer than the longest duration allowed, "
            f"{format_duration(MAX_DURATION)}"
        )
    return timedelta(minutes=minutes)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class RollbackSpec(BaseModel):
    """What a rollback request (a version that held the target before, put back) needs instead
    of the policy's normal rules: its own sign-offs, and no gates unless asked (the version was
    approved for this target before)."""

    model_config = ConfigDict(extra="forbid")
    require: list[RequirementSpec] = Field(min_length=1)
    gates: bool = False
    expires_after: Duration | None = None

    @field_validator("require", mode="before")
    @classmethod
    def is_a_list(cls, value):
        return _a_list(value, "mappings")

    @field_serializer("expires_after")
    def written_duration(self, value: timedelta | None) -> str | None:
        # As the file writes it ("1d"): a request's snapshot is read back by this spec.
        return format_duration(value) if value is not None else None

    def as_document(self) -> dict:
        document: dict = {
            "require": [{"group": r.group, "approvals": r.approvals} for r in self.require],
            "gates": self.gates,
        }
        if self.expires_after is not None:
            document["expires_after"] = format_duration(self.expires_after)
        return document


class BreakGlassSpec(BaseModel):
    """Who may move a version at once, with a reason, and what happens afterwards: the policy's
    normal quorum must ratify the move within `ratify_within`, or staff are alerted
    (`on_unratified: alert`) and also the previous holder is put back (`revert`)."""

    model_config = ConfigDict(extra="forbid")
    groups: list[GroupName] = Field(min_length=1)
    ratify_within: Duration = timedelta(hours=24)
    on_unratified: Literal["alert", "revert"] = "alert"

    @field_validator("groups", mode="before")
    @classmethod
    def is_a_list(cls, value):
        return _a_list(value, "group names")

    @field_serializer("ratify_within")
    def written_duration(self, value: timedelta) -> str:
        # As the file writes it ("24h"): a request's snapshot is read back by this spec.
        return format_duration(value)

    def as_document(self) -> dict:
        return {
            "groups": list(self.groups),
            "ratify_within": format_duration(self.ratify_within),
            "on_unratified": self.on_unratified,
        }


class EscalationSpec(BaseModel):
    """`when` the evidence shows this, `require` these approvals too (more from a group already
    required, or a group of its own); `when: no_change` (same signature, requirements and
    datasets, every shared metric within `tolerance`) replaces the requirements instead."""

    model_config = ConfigDict(extra="forbid")
    when: Literal[
        "signature_breaking",
        "signature_changed",
        "requirements_changed",
        "dataset_changed",
        "no_change",
    ]
    require: list[RequirementSpec] = Field(min_length=1)
    tolerance: Threshold | None = Field(default=None, ge=0)

    @field_validator("require", mode="before")
    @classmethod
    def require_is_a_list(cls, value):
        return _a_list(value, "mappings")

    @model_validator(mode="after")
    def tolerance_only_for_no_change(self):
        if self.tolerance is not None and self.when != "no_change":
            raise ValueError("tolerance applies only to `when: no_change`")
        return self


class EvidenceGateSpec(BaseModel):
    """A gate on the evidence: `signature_breaking: false` with `kind: required` rejects a
    candidate whose signature breaks the holder's callers."""

    model_config = ConfigDict(extra="forbid")
    evidence: EvidenceFlag
    equals: bool = False
    kind: Literal["required"] = "required"


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    models: list[Annotated[str, Field(min_length=1, max_length=PATTERN_MAX)]] = Field(min_length=1)
    targets: list[str] = Field(min_length=1)
    require: list[RequirementSpec] = Field(min_length=1)
    allow_self_approval: bool = False
    expires_after: timedelta = timedelta(days=7)
    archive_existing: bool = False
    rejections_needed: int = Field(default=1, ge=1, le=COUNT_MAX)
    gates: list[GateSpec] = []
    # Groups whose members may request; empty: any signed-in user.
    requesters: list[GroupName] = []
    rollback: RollbackSpec | None = None
    break_glass: BreakGlassSpec | None = None
    # A move of a covered target made in MLflow directly: only flagged, or also undone.
    out_of_band: OutOfBandChoice = "flag"
    # Approvals that scale with what the evidence packet shows (reviews.escalation).
    escalate: list[EscalationSpec] = []
    evidence_gates: list[EvidenceGateSpec] = []

    @model_validator(mode="after")
    def one_fast_path(self):
        if sum(rule.when == "no_change" for rule in self.escalate) > 1:
            raise ValueError("escalate: give at most one `when: no_change` rule")
        return self

    @field_validator(*LIST_FIELDS, mode="before")
    @classmethod
    def is_a_list(cls, value, info):
        return _a_list(value, LIST_FIELDS[info.field_name])

    @field_validator("expires_after", mode="before")
    @classmethod
    def parse_duration(cls, value):
        return _duration(value)


Usernames = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=USERNAME_MAX)]],
    BeforeValidator(lambda value: _a_list(value, "usernames")),
]


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: dict[GroupName, Usernames] = {}
    policies: list[PolicySpec] = []

    @field_validator("groups", "policies", mode="before")
    @classmethod
    def empty_is_none(cls, value, info):
        if value is None:
            return {} if info.field_name == "groups" else []
        return value


def target_problem(target: str) -> str | None:
    """Why `target` is not something a request can aim at, or None when it is fine."""
    try:
        Target.parse(target)
    except InvalidTarget as problem:
        return str(problem)
    return None


def format_duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def parse_policy_file(text: str) -> PolicyFile:
    """The file's content as a `PolicyFile`, or `PolicyInvalid` listing every problem found."""
    data, problems = read_yaml(text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyInvalid(
            [Problem((), "the file must be a mapping with `groups` and `policies`")]
        )
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as error:
        raise PolicyInvalid(problems + validation_problems(error)) from error
    if problems:
        raise PolicyInvalid(problems)
    problems = [
        Problem(("policies", i, "targets", j), problem)
        for i, policy in enumerate(spec.policies)
        for j, target in enumerate(policy.targets)
        if (problem := target_problem(target))
    ]
    if problems:
        raise PolicyInvalid(problems)
    return spec


def validation_problems(error: ValidationError) -> list[Problem]:
    """pydantic's errors as problems, each message as a person reads it."""
    return [
        Problem(
            tuple(item["loc"]),
            "unknown field"
            if item["type"] == "extra_forbidden"
            else item["msg"].removeprefix("Value error, "),
        )
        for item in error.errors()
    ]


# -- validation against the database -----------------------------------------------------------

# How a problem names another policy: in a file by its index (and name), in a form by its name.
PolicyNamer = Callable[[Sequence[PolicySpec], int], str]


def _by_index(policies: Sequence[PolicySpec], index: int) -> str:
    return f"policies[{index}] ({policies[index].name!r})"


def _by_name(policies: Sequence[PolicySpec], index: int) -> str:
    return f"policy {policies[index].name!r}"


def database_problems(spec: PolicyFile, *, other: PolicyNamer = _by_index) -> list[Problem]:
    """What the file asks that the database cannot give: unknown users or groups (required or
    requesting), more approvals than a group has members, two policies equally specific for one
    target (the other policy named by `other`)."""
    problems: list[Problem] = []
    usernames = {name for members in spec.groups.values() for name in members}
    User = get_user_model()
    known_users = set(
        User.objects.filter(username__in=usernames, is_active=True).values_list(
            "username", flat=True
        )
    )
    managed = managed_group_names()
    for group in spec.groups:
        if group in managed:
            problems.append(Problem(("groups", group), managed_message(group)))
    for group, members in spec.groups.items():
        for index, username in enumerate(members):
            if username not in known_users:
                problems.append(Problem(("groups", group, index), f"unknown user {username!r}"))
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
    groups = _KnownGroups(sizes, unbounded=(named - spec.groups.keys()) & managed)

    seen_names: dict[str, int] = {}
    for i, policy in enumerate(spec.policies):
        if policy.name in seen_names:
            problems.append(
                Problem(
                    ("policies", i, "name"),
                    f"duplicate policy name {policy.name!r} "
                    f"(also policies[{seen_names[policy.name]}])",
                )
            )
        seen_names.setdefault(policy.name, i)
        for place, requirements in _requirement_lists(policy):
            problems += groups.requirement_problems(("policies", i, *place), requirements)
        for place, names in _group_lists(policy):
            problems += groups.list_problems(("policies", i, *place), names)
    problems.extend(_ambiguities(spec.policies, other))
    return problems


Place = tuple[str | int, ...]


def _requirement_lists(policy: PolicySpec) -> list[tuple[Place, list[RequirementSpec]]]:
    """Every section of a policy that asks for approvals from groups, with its place."""
    lists: list[tuple[Place, list[RequirementSpec]]] = [(("require",), policy.require)]
    if policy.rollback:
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


def specificity(pattern: str) -> tuple[int, int]:
    """Exact names beat globs; among globs, a longer literal prefix beats a shorter one."""
    cut = min((pattern.index(c) for c in GLOB_CHARS if c in pattern), default=None)
    if cut is None:
        return (1, len(pattern))
    return (0, cut)


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
