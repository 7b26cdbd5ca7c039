"""Policy cases: a file of promotion requests and what a policy file should make of each, checked
offline (`manage.py test_policies`, `POST /api/v1/policies/test`, `quorum policy test`).

A case names a model and a target, the candidate's metrics, the holder's metrics (or none: nothing
holds the target) and what the evidence packet shows (`signature_breaking`, `signature_changed`,
`requirements_changed`, `dataset_changed`: true, false or `unknown`; left out: false). It expects
any of: the deciding policy (null: none covers it), the approvals needed, the escalations that
apply, gates' verdicts, and the outcome (`rejected`, `auto_approved`, `needs_sign_off`).

Each case is evaluated by the code that opens a request: `policies.matching` (the most specific
policy), `explain.sized` (metric gates, escalations, the fast path, evidence gates) and its
`outcome`. Nothing is stored and MLflow is not asked: the facts come from the case, so the
evidence is given as the flags `registry.evidence.compare` would have found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from registry import evidence as registry_evidence
from registry.models import VersionEvidence

from ..decisions.explain import Sizing, sized
from ..errors import AmbiguousPolicy, NoPolicy, PolicyInvalid, Problem
from ..policies.matching import deciding_match, matches
from ..policies.spec import (
    EvidenceFlag,
    PolicyFile,
    RequirementSpec,
    parse_policy_file,
    target_problem,
    validation_problems,
)
from ..policies.yaml_reader import read_yaml

Verdict = Literal["passed", "failed", "needs_sign_off"]
Outcome = Literal["rejected", "auto_approved", "needs_sign_off"]
FactValue = bool | Literal["unknown"]


def _a_list(value, what: str):
    if isinstance(value, str):
        raise ValueError(f"must be a list of {what}, got a string")
    return value


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str | None = None  # null: no policy covers the case
    require: list[RequirementSpec] | None = None
    escalations: list[str] | None = None
    gates: dict[str, Verdict] | None = None
    outcome: Outcome | None = None

    @model_validator(mode="after")
    def something_expected(self):
        if not self.model_fields_set:
            raise ValueError("expect at least one of policy, require, escalations, gates, outcome")
        return self

    @field_validator("require", "escalations", mode="before")
    @classmethod
    def is_a_list(cls, value, info):
        return _a_list(value, "mappings" if info.field_name == "require" else "rule names")


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=256)
    target: str = Field(min_length=1)
    metrics: dict[str, float] = {}
    # The current holder's metrics; null or left out: nothing holds the target.
    baseline: dict[str, float] | None = None
    evidence: dict[EvidenceFlag, FactValue] = {}
    expect: Expectation

    @field_validator("target")
    @classmethod
    def a_target(cls, value):
        if problem := target_problem(value):
            raise ValueError(problem)
        return value


class CasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cases: Annotated[list[Case], Field(min_length=1)]


@dataclass
class CaseResult:
    name: str
    differences: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.differences

    def as_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "differences": self.differences}


class CasesInvalid(Exception):
    """A malformed cases or policy file: `problems` are (file, Problem), file being `cases` or
    `policies`."""

    def __init__(self, problems: list[tuple[str, Problem]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {p}" for f, p in problems))


def parse_cases(text: str) -> CasesFile:
    data, problems = read_yaml(text)
    if not isinstance(data, dict):
        raise PolicyInvalid(problems + [Problem((), "the file must be a mapping with `cases`")])
    try:
        cases = CasesFile.model_validate(data)
    except ValidationError as error:
        raise PolicyInvalid(problems + validation_problems(error)) from error
    if problems:
        raise PolicyInvalid(problems)
    duplicates = [
        Problem(("cases", i, "name"), f"the name {case.name!r} is given to an earlier case too")
        for i, case in enumerate(cases.cases)
        if case.name in {c.name for c in cases.cases[:i]}
    ]
    facts = [
        Problem(
            ("cases", i, "evidence"),
            "a breaking signature is a changed one: "
            "signature_changed cannot be false when signature_breaking is true",
        )
        for i, case in enumerate(cases.cases)
        if case.evidence.get("signature_breaking") is True
        and case.evidence.get("signature_changed") is False
    ]
    if duplicates or facts:
        raise PolicyInvalid(duplicates + facts)
    return cases


def read_files(policies: str, cases: str) -> tuple[PolicyFile, CasesFile]:
    """Both files parsed, or `CasesInvalid` naming every problem of either, with its place."""
    problems: list[tuple[str, Problem]] = []
    spec = cases_file = None
    try:
        spec = parse_policy_file(policies)
    except PolicyInvalid as error:
        problems += [("policies", p) for p in error.problems]
    try:
        cases_file = parse_cases(cases)
    except PolicyInvalid as error:
        problems += [("cases", p) for p in error.problems]
    if problems or spec is None or cases_file is None:
        raise CasesInvalid(problems)
    return spec, cases_file


def comparison_of(case: Case) -> registry_evidence.EvidenceComparison:
    """The evidence comparison the case's facts describe, as `registry.evidence.compare` makes
    it: with no holder nothing changed; otherwise each flag as given (left out: false), and
    `signature_changed` true with `signature_breaking`."""
    if case.baseline is None:
        return registry_evidence.compare(VersionEvidence(problems={}), None)
    # Both sides' evidence read (unsaved rows, never stored): the comparison is decided by flags.
    comparison = registry_evidence.EvidenceComparison(
        candidate=VersionEvidence(problems={}), baseline=VersionEvidence(problems={})
    )
    facts = dict(case.evidence)
    if facts.get("signature_breaking") is True:
        facts.setdefault("signature_changed", True)
    for flag in registry_evidence.FLAGS:
        value = facts.get(flag, False)  # type: ignore[call-overload]
        if value == "unknown":
            comparison.unknown.append(f"the case gives {flag} as unknown")
            value = None
        setattr(comparison, flag, value)
    return comparison


def evaluate(case: Case, policies: PolicyFile) -> tuple[str | None, str, Sizing | None]:
    """The deciding policy's name (None when none decides, with the refusal) and the sizing."""
    found = matches(case.model, case.target, policies.policies, patterns=lambda p: p.models)
    try:
        chosen = deciding_match(case.model, case.target, found).policy
    except (NoPolicy, AmbiguousPolicy) as refusal:
        return None, str(refusal), None
    snapshot = chosen.model_dump(mode="json")
    return chosen.name, "", sized(snapshot, comparison_of(case), case.metrics, case.baseline)


def check(case: Case, policies: PolicyFile) -> CaseResult:
    """What differs between what `case` expects and what the policies make of it."""
    expect = case.expect
    result = CaseResult(name=case.name)
    name, refusal, sizing = evaluate(case, policies)
    if "policy" in expect.model_fields_set and expect.policy != name:
        got = repr(name) if name else f"none ({refusal})"
        result.differences.append(f"policy: expected {expect.policy or 'none'!r}, got {got}")
    if sizing is None:
        if not result.differences and expect.model_fields_set - {"policy"}:
            result.differences.append(f"no policy decides: {refusal}")
        return result
    got_require = [(r["group"], r["approvals"]) for r in sizing.snapshot["require"]]
    if expect.require is not None:
        wanted = [(r.group, r.approvals) for r in expect.require]
        if wanted != got_require:
            result.differences.append(
                f"require: expected {_groups(wanted)}, got {_groups(got_require)}"
            )
    applied = [rule["when"] for rule in sizing.snapshot["escalation"]["applied"]]
    if expect.escalations is not None and expect.escalations != applied:
        result.differences.append(
            f"escalations: expected {expect.escalations or 'none'}, got {applied or 'none'}"
        )
    verdicts = {r.metric: str(r.verdict) for r in sizing.results}
    reasons = {r.metric: r.reason for r in sizing.results}
    for metric, wanted_verdict in (expect.gates or {}).items():
        if metric not in verdicts:
            result.differences.append(
                f"gate {metric}: expected {wanted_verdict}, but the policy "
                f"{name!r} has no gate on it"
            )
        elif verdicts[metric] != wanted_verdict:
            result.differences.append(
                f"gate {metric}: expected {wanted_verdict}, "
                f"got {verdicts[metric]} ({reasons[metric]})"
            )
    if expect.outcome is not None and expect.outcome != sizing.outcome:
        result.differences.append(f"outcome: expected {expect.outcome}, got {sizing.outcome}")
    return result


def _groups(require: list[tuple[str, int]]) -> str:
    return " and ".join(f"{n} of {g}" for g, n in require) or "nothing"


def run(*, policies: str, cases: str) -> list[CaseResult]:
    """Every case of the `cases` file's text checked against the `policies` file's text;
    `CasesInvalid` when either is malformed."""
    spec, cases_file = read_files(policies, cases)
    return [check(case, spec) for case in cases_file.cases]
