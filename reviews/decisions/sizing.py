"""Sizing a request: the sign-offs it will need and whether its gates decide it at once.

The one function that says what a request of a kind will take (`size`), used when a request
opens (`reviews.decisions.opening.request_create`) and by every preview (the promotion form, the
model page's rollback button, `GET /api/v1/rollbacks/preview`, `quorum rollback --preview`), so
what a person is told before submitting is what the request then asks.

- a promotion: the policy's `require`, raised or lowered by its `escalate` rules, its metric and
  evidence gates; auto-approve gates approve it at once only when no escalation applies (an
  escalation always needs people);
- a rollback: the policy's `rollback:` rules (`require`, or the policy's own where it gives
  none); escalations only with `rollback: {escalate: true}`; gates only with `rollback: {gates:
  true}`. A policy without a `rollback:` section keeps its `require` and its required gates (which
  may reject) but never auto-approves a rollback;
- break glass: every gate, metric and evidence, is evaluated for the record and skipped ("skipped:
  break glass"); the move is made at once and its ratification needs the sized quorum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from registry.models import ModelVersion
from registry.targets import Target

from ..errors import NoPolicy
from ..models import ApprovalPolicy, RequestKind
from ..policies.matching import policy_as_spec, policy_for
from . import explain, gates


@dataclass
class Sizing:
    """What a request will take: the policy snapshot it stores (`require` is what the tally
    counts), its gate results, and how long it stays open."""

    snapshot: dict
    results: list[gates.GateResult]
    expires_after: timedelta

    @property
    def require(self) -> list[dict]:
        return self.snapshot["require"]

    @property
    def escalations(self) -> list[dict]:
        """The escalation rules that apply (not the `no_change` fast path, which lowers)."""
        return explain.escalations(self.snapshot)

    @property
    def leaves(self) -> dict | None:
        """The protected target the version leaves, with the policy and sign-offs it adds."""
        return self.snapshot.get("leaves")

    @property
    def failures(self) -> list[gates.GateResult]:
        return gates.required_failures(self.results)

    @property
    def approved_at_once(self) -> bool:
        """Every auto-approve gate passed, no escalation asks for people and the version leaves
        no protected target (whose approvers must sign)."""
        return explain.approved_at_once(self.snapshot, self.results)

    @property
    def needs(self) -> str:
        """'1 of ml-leads and 2 of data-science'."""
        return requirement_words(self.require)

    @property
    def words(self) -> str:
        """What the request will take, as the button, the form, the API and the CLI say it."""
        if self.failures:
            return "rejected at once: " + "; ".join(r.reason for r in self.failures)
        if self.approved_at_once:
            return "approved at once by its auto-approve gates"
        words = f"needs {self.needs}"
        if self.escalations:
            words += f" ({escalation_words(self.escalations)})"
        if self.leaves:
            words += (
                f" (it takes the version out of {self.leaves['target']}: that target's "
                f"approvers sign too, as its policy {self.leaves['policy']!r} asks)"
            )
        return words


def requirement_words(require: list[dict]) -> str:
    return " and ".join(f"{r['approvals']} of {r['group']}" for r in require)


def escalation_words(applied: list[dict]) -> str:
    """Why the evidence raised what a request needs: "raised because the signature breaks the
    current holder's callers: column `age` removed"."""
    return "raised because " + "; ".join(rule["reason"] for rule in applied)


def leaving(
    candidate: ModelVersion, target: str, *, policies: list[ApprovalPolicy] | None = None
) -> tuple[str, ApprovalPolicy] | None:
    """The protected stage `candidate` would leave by moving to `target`, and the policy that
    decides it; None when it leaves none (an alias moves no version out of anything; a stage no
    policy covers is not protected). `candidate.model` must be loaded."""
    if Target.parse(target).is_alias or candidate.stage == target:
        return None
    held = Target.parse(candidate.stage)
    if not held.has_holder:
        return None  # None and Archived are not held: leaving them takes nothing away
    try:
        return candidate.stage, policy_for(candidate.model.name, candidate.stage, policies=policies)
    except NoPolicy:
        return None


def size(
    *,
    policy: ApprovalPolicy,
    kind: str,
    candidate: ModelVersion,
    baseline: ModelVersion | None,
    target: str,
    policies: list[ApprovalPolicy] | None = None,
) -> Sizing:
    """What a request of `kind` for `candidate` to reach `target` (replacing `baseline`) under
    `policy` will take. `policies` (all of them, loaded) saves the queries of a preview that
    sizes many targets."""
    spec = policy_as_spec(policy)
    snapshot = spec.model_dump(mode="json")
    if (left := leaving(candidate, target, policies=policies)) is not None:
        stage, other = left
        # A move out of a protected target needs that target's approval too: its sign-offs are
        # added (escalation.resolve keeps them whatever the evidence shows).
        snapshot["leaves"] = {
            "target": stage,
            "policy": other.name,
            "require": [r.model_dump() for r in policy_as_spec(other).require],
        }
    expires_after = policy.expires_after
    if kind == RequestKind.ROLLBACK:
        rules = spec.rollback
        # The version was approved for this target before: the rollback rules decide.
        if rules is None:
            snapshot["gates"] = [g for g in snapshot["gates"] if g["kind"] != "auto_approve"]
            snapshot["escalate"] = []
        else:
            if rules.require is not None:
                snapshot["require"] = [r.model_dump() for r in rules.require]
            if not rules.gates:
                snapshot["gates"] = []
                snapshot["evidence_gates"] = []
            if not rules.escalate:
                snapshot["escalate"] = []
            snapshot["rollback_rules"] = True
            expires_after = rules.expires_after or expires_after
    # The metric gates, then what the evidence packet shows (it may add approvals, lower them or
    # fail an evidence gate): the same function `quorum policy explain` and `test` show.
    core = explain.sized_for(snapshot, candidate, baseline)
    snapshot, results = core.snapshot, core.results
    if kind == RequestKind.BREAK_GLASS:
        # The move is made at once: the gates are shown, and decide nothing.
        results = gates.skipped(results)
        snapshot["gates"] = []
        snapshot["evidence_gates"] = []
    return Sizing(snapshot=snapshot, results=results, expires_after=expires_after)
