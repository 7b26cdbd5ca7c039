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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from registry import metrics

OPS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}


class Verdict(StrEnum):
    """What a gate's result means for the request, as pages, mails, the API and the CLI say it.

    An auto-approve gate that is not met rejects nothing: it only means people must sign off,
    so it reads as neutral, never as a failure. Only a required gate fails.
    """

    PASSED = "passed"
    FAILED = "failed"
    NEEDS_SIGN_OFF = "needs_sign_off"
    # Evaluated and shown, but not applied: a break-glass move skips every gate.
    SKIPPED = "skipped"

    @property
    def words(self) -> str:
        return VERDICT_WORDS[self]


VERDICT_WORDS = {
    Verdict.PASSED: "pass",
    Verdict.FAILED: "fail",
    Verdict.NEEDS_SIGN_OFF: "not auto-approved: needs sign-off",
    Verdict.SKIPPED: "skipped: break glass",
}


def verdict_of(kind: str, passed: bool, skipped: bool = False) -> Verdict:
    if skipped:
        return Verdict.SKIPPED
    if passed:
        return Verdict.PASSED
    return Verdict.NEEDS_SIGN_OFF if kind == "auto_approve" else Verdict.FAILED


def with_verdicts(results: list[Mapping]) -> list[dict]:
    """Stored gate results (a request's `gate_results`) with their `verdict` and its `words`."""
    shown = []
    for result in results or []:
        found = verdict_of(
            result.get("kind", "required"), bool(result.get("passed")), bool(result.get("skipped"))
        )
        shown.append({**result, "verdict": str(found), "verdict_words": found.words})
    return shown


# The marks the request page's gate table uses: only a required gate that fails is a cross.
VERDICT_MARKS = {
    Verdict.PASSED: "✓",
    Verdict.FAILED: "✗",
    Verdict.NEEDS_SIGN_OFF: "–",
    Verdict.SKIPPED: "–",
}


def result_lines(results: list[Mapping]) -> list[str]:
    """Stored gate results as lines of text, each with its verdict in the page's words:
    "✓ accuracy 0.9000 >= 0.8000", "✗ fail: accuracy 0.7000, not >= 0.8000",
    "– not auto-approved: needs sign-off: accuracy 0.9100, not > 0.9700"."""
    lines = []
    for result in with_verdicts(results):
        verdict = Verdict(result["verdict"])
        reason = result.get("reason") or result.get("metric", "")
        said = reason if verdict == Verdict.PASSED else f"{verdict.words}: {reason}"
        lines.append(f"{VERDICT_MARKS[verdict]} {said}")
    return lines


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
    # Evaluated for the record only: it neither rejects nor approves (break glass).
    skipped: bool = False

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.kind, self.passed, self.skipped)

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
            reason=f"{metric} {_num(value)}{_held(passed)} {op} {_num(threshold)}",
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
        reason=f"{metric} {_num(value)}{_held(passed)} {op} baseline {_num(base)} "
        f"{metrics.format_change(float(delta))} = {_num(threshold)}",
    )


def _held(passed: bool) -> str:
    # A reason states the comparison, true as written ("accuracy 0.7000, not >= 0.8000"); what
    # it means for the request is the verdict's, said beside it in the one wording of
    # `VERDICT_WORDS` (an auto-approve gate that is not met fails nothing).
    return "" if passed else ", not"


def _num(value: float) -> str:
    # The one spelling pages and mails use for metric values: a reason quotes them the same way.
    return metrics.format_value(value)


def required_failures(results: list[GateResult]) -> list[GateResult]:
    return [r for r in results if r.kind == "required" and not r.passed and not r.skipped]


def auto_approves(results: list[GateResult]) -> bool:
    """True when auto-approve gates exist and they and every required gate all pass (skipped
    gates decide nothing)."""
    applied = [r for r in results if not r.skipped]
    auto = [r for r in applied if r.kind == "auto_approve"]
    return bool(auto) and all(r.passed for r in applied)


def auto_approves_stored(results: list[Mapping]) -> bool:
    """`auto_approves` for results as a request stores them (`gate_results`)."""
    applied = [r for r in results if not r.get("skipped")]
    auto = [r for r in applied if r.get("kind") == "auto_approve"]
    return bool(auto) and all(r.get("passed") for r in applied)


def skipped(results: list[GateResult]) -> list[GateResult]:
    """`results` kept for the record but applied to nothing (their verdict: "skipped: break
    glass")."""
    return [replace(r, skipped=True) for r in results]
