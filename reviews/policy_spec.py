"""The policy file format and its validation: what a policy says, and every way it can be wrong.

Every problem is reported as `place: problem`, the place written the way a person finds it in the
file (`policies[0].require[1].group`). The same checks run when `reviews.policies` loads a file and
when an admin saves a policy in the admin.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import timedelta
from typing import Annotated, Literal

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
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

from .errors import PolicyInvalid

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


# A policy's list fields, and what each holds (for "must be a list of ..., got a string").
LIST_FIELDS = {
    "models": "model name globs",
    "targets": "stages or @aliases",
    "require": "mappings",
    "gates": "mappings",
    "requesters": "group names",
}


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
    # Groups whose members may request; empty: any signed-in user.
    requesters: list[Annotated[str, Field(min_length=1)]] = []

    @field_validator(*LIST_FIELDS, mode="before")
    @classmethod
    def is_a_list(cls, value, info):
        return _a_list(value, LIST_FIELDS[info.field_name])

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
    """What the file asks that the database cannot give: unknown users or groups (required or
    requesting), more approvals than a group has members, two policies equally specific for one
    target."""
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
    named = {req.group for policy in spec.policies for req in policy.require}
    named |= {group for policy in spec.policies for group in policy.requesters}
    outside = named - sizes.keys()
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
        for j, group in enumerate(policy.requesters):
            place = f"policies[{i}].requesters[{j}]"
            if group not in sizes:
                problems.append(f"{place}: unknown group {group!r}")
            elif group in policy.requesters[:j]:
                problems.append(f"{place}: group {group!r} is listed twice")
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
