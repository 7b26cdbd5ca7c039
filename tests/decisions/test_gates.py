"""Metric gates on values that are not finite numbers: NaN and infinities as MLflow stores them."""

from __future__ import annotations

import json

import pytest

from reviews.decisions import gates

ABSOLUTE = {"metric": "accuracy", "op": ">=", "value": 0.8, "kind": "required"}
LOWER = {"metric": "loss", "op": "<=", "value": 0.5, "kind": "required"}
RELATIVE = {"metric": "f1", "op": ">=", "baseline_delta": -0.01, "kind": "required"}
RELATIVE_AUTO = {**RELATIVE, "kind": "auto_approve"}


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("NaN", "NaN"), ("Infinity", "∞"), ("-Infinity", "−∞"), (float("nan"), "NaN")],
)
@pytest.mark.parametrize("gate", [ABSOLUTE, LOWER, RELATIVE], ids=["higher", "lower", "relative"])
def test_a_non_finite_candidate_fails_every_gate_saying_what_it_is(gate, stored, shown):
    [result] = gates.evaluate([gate], {gate["metric"]: stored}, {gate["metric"]: 0.5})

    assert not result.passed
    assert result.reason == f"{gate['metric']} is {shown}: not a finite number"


def test_minus_infinity_does_not_pass_a_lower_is_better_threshold():
    [result] = gates.evaluate([LOWER], {"loss": "-Infinity"}, None)

    assert not result.passed and result.reason == "loss is −∞: not a finite number"


@pytest.mark.parametrize("stored", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_baseline_leaves_a_required_gate_to_the_reviewers(stored):
    [result] = gates.evaluate([RELATIVE], {"f1": 0.9}, {"f1": stored})

    assert result.passed
    assert result.reason.startswith("not evaluated: the current holder's f1 is ")
    assert not gates.required_failures([result])


def test_a_non_finite_baseline_never_auto_approves():
    results = gates.evaluate([ABSOLUTE, RELATIVE_AUTO], {"accuracy": 0.9, "f1": 0.9}, {"f1": "NaN"})

    assert not results[1].passed
    assert results[1].reason == (
        "not evaluated: the current holder's f1 is NaN, so this gate cannot auto-approve"
    )
    assert not gates.auto_approves(results)


def test_results_with_non_finite_values_are_strict_json():
    results = gates.evaluate(
        [ABSOLUTE, RELATIVE], {"accuracy": "NaN", "f1": 0.9}, {"f1": "Infinity"}
    )

    stored = [r.as_json() for r in results]

    text = json.dumps(stored, allow_nan=False)
    assert json.loads(text)[0]["value"] == "NaN"
    assert json.loads(text)[1]["baseline_value"] == "Infinity"


def test_finite_values_stored_as_numbers_are_compared_as_before():
    [result] = gates.evaluate([RELATIVE], {"f1": 0.885}, {"f1": 0.9})

    assert not result.passed
    assert result.reason == "f1 0.8850, not >= baseline 0.9000 −0.0100 = 0.8900"
