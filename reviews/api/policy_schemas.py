"""What the API answers about policies: the explanation of the policy that would decide a
request (`GET /policies/explain`) and the result of checking policy cases against a policy file
(`POST /policies/test`)."""

from __future__ import annotations

from typing import Any, Literal

from ninja import Field, Schema
from pydantic import ConfigDict

from .schemas import Name, Text, VersionNumber


class ExplainIn(Schema):
    model: Name
    version: VersionNumber = Field(description="The version number.")
    target: Name = Field(description="A stage (Staging, Production, Archived) or @alias.")


class RequiredGroup(Schema):
    group: str
    approvals: int


class AppliedRule(Schema):
    when: str = Field(description="The escalation rule's `when`, e.g. `signature_breaking`.")
    reason: str = Field(description="Why it applied, from the evidence.")


class RollbackAvailability(Schema):
    available: bool
    to_version: int | None = Field(description="The previous holder a rollback would put back.")
    requesters: list[str] = Field(description="Groups that may ask; empty: anyone signed in.")
    require: list[RequiredGroup]
    gates: bool = Field(description="Whether a rollback is held to the metric gates.")
    rules: str
    reason: str


class BreakGlassAvailability(Schema):
    available: bool
    groups: list[str] = Field(description="Whose members may break glass.")
    ratify_within: str | None = None
    on_unratified: str | None = None
    reason: str


class ExplanationOut(Schema):
    model: str
    version: int
    target: str
    policy: str = Field(description="The policy that would decide: the most specific match.")
    policy_reason: str = Field(description="Why that policy, and which ones it beat.")
    baseline: int | None = Field(description="The version holding the target now, if any.")
    already_at_target: bool
    requesters: list[str] = Field(description="Groups that may request; empty: anyone.")
    may_request: bool = Field(description="Whether the token's user may request it.")
    request_refusal: str
    policy_require: list[RequiredGroup] = Field(description="What the policy itself asks.")
    require: list[RequiredGroup] = Field(
        description="What a request would need, once the evidence has sized it."
    )
    escalation: list[AppliedRule]
    evidence_unknown: list[str] = Field(description="Why some evidence is unknown, if it is.")
    gates: list[dict[str, Any]] = Field(
        description="Each gate's result now, as a request's `gates`, with its `verdict`."
    )
    outcome: Literal["rejected", "auto_approved", "needs_sign_off"]
    outcome_words: str
    expires_after: str
    allow_self_approval: bool
    rollback: RollbackAvailability
    break_glass: BreakGlassAvailability


class PolicyTestIn(Schema):
    model_config = ConfigDict(extra="forbid")

    policies: Text = Field(description="The policy file's text (YAML), as load_policies reads it.")
    cases: Text = Field(description="The cases file's text (YAML, docs/policies.md).")


class FileProblem(Schema):
    file: Literal["policies", "cases"]
    place: str = Field(
        description="Where in the file, e.g. `cases[2].expect.gates`; empty: the file."
    )
    message: str


class CaseOut(Schema):
    name: str
    passed: bool
    differences: list[str] = Field(description="What the case expected and what it got, per item.")


class PolicyTestOut(Schema):
    passed: bool = Field(description="Both files are well formed and every case passes.")
    problems: list[FileProblem] = Field(description="Why a file is malformed; then no case runs.")
    cases: list[CaseOut]
