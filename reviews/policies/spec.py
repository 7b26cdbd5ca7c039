"""The policy file format and its validation: what a policy says, and every way it can be wrong.

Every problem is a `Problem`: its location as data (`("policies", 0, "require", 1, "group")`) and
its message, written `policies[0].require[1].group: message` only where a person reads it (the
`load_policies` command, the admin's forms). The same checks run when `reviews.policies.loading`
loads a file and when an admin saves a policy in the admin; what needs the database (users,
groups, ties between policies) is `reviews.policies.database_checks`.

Limits, each refused with its place: the file's own (size, keys given twice, aliases) in
`reviews.policies.yaml_reader`; durations up to `MAX_DURATION`, finite thresholds, and names and
counts the database can store here.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from registry.targets import NotATarget, Target

from ..errors import InvalidTarget, PolicyInvalid, Problem
from .yaml_reader import read_yaml

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


def _a_list(value, what: str):
    if isinstance(value, str):
        raise ValueError(f"must be a list of {what}, got a string")
    return value


# What a policy does about a move of a covered target made in MLflow directly
# (`reviews.execution.reverts`).
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
    of the policy's normal rules (`reviews.decisions.sizing`): its own sign-offs (default: the
    policy's `require`), no gates unless `gates: true` (the version was approved for this target
    before) and no escalation unless `escalate: true`."""

    model_config = ConfigDict(extra="forbid")
    require: list[RequirementSpec] | None = Field(default=None, min_length=1)
    gates: StrictBool = False
    escalate: StrictBool = False
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
        document: dict = {"gates": self.gates}
        if self.require is not None:
            document["require"] = [
                {"group": r.group, "approvals": r.approvals} for r in self.require
            ]
        if self.escalate:
            document["escalate"] = True
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
    # Approvals that scale with what the evidence packet shows (reviews.decisions.escalation).
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
    except NotATarget as problem:
        return str(problem)
    return None


def parse_target(target: str) -> Target:
    """The `Target` that `target` names, or the review engine's refusal `InvalidTarget`
    ("Target 'Prod' is not a stage …"), the one message every form, endpoint and command shows."""
    try:
        return Target.parse(target)
    except NotATarget as problem:
        raise InvalidTarget(f"Target {problem}.") from None


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
