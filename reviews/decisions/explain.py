"""What a request would need, computed once for every caller that asks.

`sized` is the one place a request's requirements and gate results are computed: the metric
gates (`gates.evaluate`), then what the evidence packet shows (`escalation.resized`: escalations,
the no-change fast path, evidence gates). `opening.request_create` stores what it returns; the
explanation (`reviews.policy_tools.explanation`: the API's `GET /policies/explain`, `quorum policy
explain`, the version page's panel) and the policy cases (`reviews.policy_tools.cases`,
`quorum policy test`) show it without storing anything. So neither can say other than what a
request would get.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry import evidence as registry_evidence
from registry.models import ModelVersion

from . import escalation, gates


@dataclass
class Sizing:
    """What a request would hold: its snapshot (`require` decided by the evidence, with
    `policy_require` and `escalation`) and its gates' results, metric gates first."""

    snapshot: dict
    results: list[gates.GateResult]

    @property
    def outcome(self) -> str:
        """`rejected`, `auto_approved` or `needs_sign_off`, as `request_create` decides."""
        if gates.required_failures(self.results):
            return "rejected"
        return (
            "auto_approved" if approved_at_once(self.snapshot, self.results) else "needs_sign_off"
        )


def escalations(snapshot: dict) -> list[dict]:
    """The escalation rules that apply (not the `no_change` fast path, which lowers)."""
    applied = snapshot.get("escalation", {}).get("applied", [])
    return [rule for rule in applied if rule["when"] != "no_change"]


def approved_at_once(snapshot: dict, results: list[gates.GateResult]) -> bool:
    """Whether the gates approve the request without people: every auto-approve gate passed,
    no required gate failed, no escalation applies (an escalation always needs people) and the
    version leaves no protected target (`snapshot["leaves"]`, whose approvers must sign)."""
    return (
        not gates.required_failures(results)
        and not escalations(snapshot)
        and not snapshot.get("leaves")
        and gates.auto_approves(results)
    )


def sized(
    snapshot: dict,
    comparison: registry_evidence.EvidenceComparison,
    candidate_metrics: dict,
    baseline_metrics: dict | None,
) -> Sizing:
    """The requirements and gate results of a request under `snapshot` (a policy spec as JSON,
    as a request stores it), for a candidate with `candidate_metrics` against a holder with
    `baseline_metrics` (None: nothing holds the target), given the evidence `comparison`."""
    results = gates.evaluate(snapshot["gates"], candidate_metrics, baseline_metrics)
    snapshot, evidence_results = escalation.resized(
        snapshot, comparison, candidate_metrics, baseline_metrics
    )
    return Sizing(snapshot=snapshot, results=results + evidence_results)


def sized_for(snapshot: dict, candidate: ModelVersion, baseline: ModelVersion | None) -> Sizing:
    """`sized` for mirrored versions, with the digests of the evidence it was decided on."""
    result = sized(
        snapshot,
        escalation.comparison_for(candidate, baseline),
        candidate.metrics or {},
        baseline.metrics if baseline else None,
    )
    result.snapshot["escalation"]["evidence"] = escalation.digests(candidate, baseline)
    return result
