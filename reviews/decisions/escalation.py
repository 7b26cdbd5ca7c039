"""Approvals that scale with the risk: what the evidence packet shows decides what a request needs.

A policy's `escalate` rules add requirements when the candidate, against the target's current
holder, breaks its signature, changes its requirements or was trained or evaluated on other data;
a `when: no_change` rule (nothing of that changed and every shared metric moved by at most its
tolerance) replaces the requirements with its own, usually fewer. `evidence_gates` reject a
candidate whose evidence shows what the policy forbids.

Evidence not read yet (the worker reads it after the sync mirrors a version) or unreadable is
unknown: an escalation whose condition is unknown applies (the safe side), the fast path does
not, and an evidence gate waits. When the evidence arrives (`registry.evidence.evidence_stored`)
open requests are decided again (`reviews.decisions.reevaluation`), and approvals given on other
evidence go stale.

What was decided lives in the request's policy snapshot: `require` is what the tally counts,
`policy_require` what the policy itself asked, and `escalation` which rules applied and why, with
the evidence digests they were decided on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from registry import evidence as registry_evidence
from registry import metrics
from registry.models import ModelVersion

from .gates import GateResult

FLAG_WORDS = {
    "signature_breaking": "the signature breaks the current holder's callers",
    "signature_changed": "the signature changed",
    "requirements_changed": "the requirements changed",
    "dataset_changed": "the datasets changed",
}


@dataclass(frozen=True)
class Resolution:
    require: list[dict]  # [{"group", "approvals"}], what the tally counts
    applied: list[dict]  # [{"when", "reason"}], the rules that changed `require`


def comparison_for(candidate: ModelVersion, baseline: ModelVersion | None):
    return registry_evidence.compare(
        registry_evidence.evidence_of(candidate), registry_evidence.evidence_of(baseline)
    )


def resolve(
    snapshot: dict,
    comparison: registry_evidence.EvidenceComparison,
    candidate_metrics: dict,
    baseline_metrics: dict | None,
) -> Resolution:
    """The requirements `snapshot`'s policy asks for, given what `comparison` shows, with the
    sign-offs of a protected target the version leaves (`snapshot["leaves"]`,
    `reviews.decisions.sizing`), which no evidence lowers."""
    found = _resolve(snapshot, comparison, candidate_metrics, baseline_metrics)
    leaves = snapshot.get("leaves")
    if leaves:
        return Resolution(require=_merged(found.require, leaves["require"]), applied=found.applied)
    return found


def _resolve(
    snapshot: dict,
    comparison: registry_evidence.EvidenceComparison,
    candidate_metrics: dict,
    baseline_metrics: dict | None,
) -> Resolution:
    base = [dict(r) for r in snapshot.get("policy_require", snapshot.get("require", []))]
    rules = snapshot.get("escalate", [])
    flags = comparison.flags()
    fast = next((r for r in rules if r["when"] == "no_change"), None)
    if fast is not None and comparison.baseline is not None:
        if all(value is False for value in flags.values()):
            moved = metrics_moved(candidate_metrics, baseline_metrics, fast.get("tolerance") or 0)
            if not moved:
                tolerance = fast.get("tolerance") or 0
                return Resolution(
                    require=[dict(r) for r in fast["require"]],
                    applied=[
                        {
                            "when": "no_change",
                            "reason": "same signature, requirements and datasets; every shared "
                            f"metric within {tolerance:g} of the holder's",
                        }
                    ],
                )
    require = base
    applied = []
    for rule in rules:
        if rule["when"] == "no_change":
            continue
        value = flags.get(rule["when"])
        if value is False:
            continue
        if value is None:
            why = "unknown, so the rule applies: " + (
                "; ".join(comparison.unknown) or "the evidence could not be compared"
            )
        else:
            why = FLAG_WORDS[rule["when"]]
            details = _details(rule["when"], comparison)
            if details:
                why += ": " + details
        require = _merged(require, rule["require"])
        applied.append({"when": rule["when"], "reason": why})
    return Resolution(require=require, applied=applied)


def metrics_moved(candidate: dict, baseline: dict | None, tolerance: float) -> list[str]:
    """Shared metrics that moved by more than `tolerance` (or are not finite numbers)."""
    if not baseline:
        return []
    moved = []
    for key in sorted(candidate.keys() & baseline.keys()):
        new, old = metrics.number(candidate[key]), metrics.number(baseline[key])
        if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
            moved.append(key)
        elif abs(new - old) > tolerance:
            moved.append(key)
    return moved


def _details(flag: str, comparison) -> str:
    if flag in ("signature_breaking", "signature_changed"):
        changes = comparison.signature_changes
        if flag == "signature_breaking":
            changes = [c for c in changes if c.breaking]
        return "; ".join(c.text for c in changes[:3])
    if flag == "requirements_changed":
        return "; ".join(comparison.requirement_changes[:3])
    return ""


def _merged(require: list[dict], extra: list[dict]) -> list[dict]:
    """`require` with `extra` added: a group already required needs the larger count."""
    merged = [dict(r) for r in require]
    for req in extra:
        same = next((r for r in merged if r["group"] == req["group"]), None)
        if same is None:
            merged.append({"group": req["group"], "approvals": req["approvals"]})
        else:
            same["approvals"] = max(same["approvals"], req["approvals"])
    return merged


def gate_results(snapshot: dict, comparison) -> list[GateResult]:
    """The policy's evidence gates against `comparison`; an unknown one passes for now (it is
    decided again when the evidence is read) and says so."""
    results = []
    flags = comparison.flags()
    for gate in snapshot.get("evidence_gates", []):
        flag, wanted = gate["evidence"], gate.get("equals", False)
        value = flags.get(flag)
        common = {"metric": f"evidence: {flag}", "op": "==", "kind": gate.get("kind", "required")}
        if value is None:
            results.append(
                GateResult(
                    **common,
                    passed=True,
                    reason=f"{flag} not known yet: checked when the evidence is read",
                )
            )
            continue
        passed = value == wanted
        reason = f"{flag} is {str(value).lower()}"
        if not passed:
            reason += f" ({FLAG_WORDS[flag]}" + (
                f": {details})" if (details := _details(flag, comparison)) else ")"
            )
        results.append(GateResult(**common, passed=passed, reason=reason))
    return results


def refresh(request, candidate: ModelVersion, baseline: ModelVersion | None) -> list[GateResult]:
    """Decides `request`'s requirements again from the evidence of `candidate` and `baseline`,
    writing them into its policy snapshot (not saved); returns the evidence gates' results."""
    snapshot, results = resized(
        request.policy_snapshot,
        comparison_for(candidate, baseline),
        request.candidate_metrics or {},
        request.baseline_metrics,
    )
    snapshot["escalation"]["evidence"] = digests(candidate, baseline)
    request.policy_snapshot = snapshot
    return results


def resized(
    snapshot: dict,
    comparison: registry_evidence.EvidenceComparison,
    candidate_metrics: dict,
    baseline_metrics: dict | None,
) -> tuple[dict, list[GateResult]]:
    """`snapshot` with its requirements decided by what `comparison` shows (a copy: `require`,
    `policy_require` and `escalation.applied`), and the evidence gates' results."""
    snapshot = dict(snapshot)
    snapshot.setdefault("policy_require", snapshot.get("require", []))
    resolution = resolve(snapshot, comparison, candidate_metrics, baseline_metrics)
    snapshot["require"] = resolution.require
    snapshot["escalation"] = {"applied": resolution.applied}
    return snapshot, gate_results(snapshot, comparison)


def digests(candidate: ModelVersion, baseline: ModelVersion | None) -> dict:
    """The digests of the evidence a decision (or a vote) was made on; None where unread."""
    mine = registry_evidence.evidence_of(candidate)
    theirs = registry_evidence.evidence_of(baseline)
    return {
        "candidate": mine.digest if mine else None,
        "baseline": theirs.digest if theirs else (None if baseline else "none"),
    }


def seen_evidence(request) -> dict:
    """What a vote cast now saw, for `Vote.seen_evidence`."""
    return dict(request.policy_snapshot.get("escalation", {}).get("evidence", {}))
