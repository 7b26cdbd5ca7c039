"""Metric gates: checks a candidate's run must pass, against fixed thresholds or the baseline.

A gate is *required* (failing rejects the request at once, with the reason) or *auto_approve*
(when every one of those passes, and every required gate too, no human vote is needed). Results
keep the values compared, so the request page and the audit trail can say exactly why.

Metric values arrive as the mirror stores them (`registry.metrics`), NaN and infinities included.
A candidate whose value is not a finite number fails the gate ("accuracy is NaN"), whatever the
operator: no threshold is met by a value that is not a number. A relative gate whose baseline is
not finite cannot be evaluated: like a baseline that never logged the metric, it does not reject
the request (a broken holder must stay replaceable), but it never auto-approves one either.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass

from registry import metrics

OPS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}


@dataclass(frozen=True)
class GateResult:
    metric: str
    op: str
    kind: str
    passed: bool
    reason: str
    value: float | None = None  # the candidate's
    threshold: float | None = None  # what it was compared with
    baseline_value: float | None = None
    baseline_delta: float | None = None

    def as_json(self) -> dict:
        """For JSON columns: non-finite values in the mirror's spelling ("NaN", "Infinity")."""
        return metrics.encode_json(asdict(self))


def evaluate(
    gates: list[dict],
    candidate: dict[str, float],
    baseline: dict[str, float] | None,
) -> list[GateResult]:
    """Each gate (as in a policy snapshot) checked against candidate and baseline metrics."""
    return [_evaluate_one(gate, candidate, baseline) for gate in gates]


def _evaluate_one(gate: dict, candidate: dict, baseline: dict | None) -> GateResult:
    metric, op, kind = gate["metric"], gate["op"], gate.get("kind", "required")
    delta = gate.get("baseline_delta")
    common = {"metric": metric, "op": op, "kind": kind, "baseline_delta": delta}
    value = metrics.number(candidate.get(metric))
    if value is None:
        return GateResult(
            **common, passed=False, reason=f"the candidate's run never logged {metric}"
        )
    if not math.isfinite(value):
        return GateResult(
            **common,
            value=value,
            passed=False,
            reason=f"{metric} is {metrics.non_finite_label(value)}: not a finite number",
        )
    if delta is None:
        threshold = float(gate["value"])
        passed = OPS[op](value, threshold)
        return GateResult(
            **common,
            value=value,
            threshold=threshold,
            passed=passed,
            reason=f"{metric} {_num(value)} {op} {_num(threshold)}"
            + ("" if passed else ": not met"),
        )
    if baseline is None:
        return GateResult(
            **common, value=value, passed=True, reason="no baseline: nothing holds the target yet"
        )
    base = metrics.number(baseline.get(metric))
    if base is None:
        return GateResult(
            **common,
            value=value,
            passed=True,
            reason=f"no baseline: the current holder never logged {metric}",
        )
    if not math.isfinite(base):
        passes = kind != "auto_approve"
        return GateResult(
            **common,
            value=value,
            baseline_value=base,
            passed=passes,
            reason=f"not evaluated: the current holder's {metric} is "
            f"{metrics.non_finite_label(base)}"
            + ("" if passes else ", so this gate cannot auto-approve"),
        )
    threshold = base + float(delta)
    passed = OPS[op](value, threshold)
    return GateResult(
        **common,
        value=value,
        threshold=threshold,
        baseline_value=base,
        passed=passed,
        reason=f"{metric} {_num(value)} {op} baseline {_num(base)} {float(delta):+g} = "
        f"{_num(threshold)}" + ("" if passed else ": not met"),
    )


def _num(value: float) -> str:
    return f"{value:.4g}"


def required_failures(results: list[GateResult]) -> list[GateResult]:
    return [r for r in results if r.kind == "required" and not r.passed]


def auto_approves(results: list[GateResult]) -> bool:
    """True when auto-approve gates exist and they and every required gate all pass."""
    auto = [r for r in results if r.kind == "auto_approve"]
    return bool(auto) and all(r.passed for r in results)
