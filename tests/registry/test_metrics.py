"""How a metric's number reads (registry/metrics.py): one spelling for pages, mails, gate reasons
and charts."""

from __future__ import annotations

import math

import pytest

from registry import metrics


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.91234, "0.9123"),
        (-0.25, "−0.2500"),
        (0, "0.0000"),
        (1234.5, "1,234.5"),
        (2e-5, "2.000e-05"),
        (-3e7, "−3.000e+07"),
        (math.nan, "NaN"),
        (math.inf, "∞"),
        ("-Infinity", "−∞"),
        (None, "—"),
    ],
)
def test_format_value(value, shown):
    assert metrics.format_value(value) == shown


def test_changes_and_relative_changes_carry_their_sign():
    assert [metrics.format_change(v) for v in (0.0002, -0.01, 0, None, math.nan)] == [
        "+0.0002",
        "−0.0100",
        "±0",
        "—",
        "—",
    ]
    assert [metrics.format_relative(v) for v in (0.0123, -0.05, None)] == ["+1.2%", "−5.0%", ""]


def test_a_gate_reason_quotes_values_as_the_page_shows_them():
    from reviews.decisions import gates

    [result] = gates.evaluate(
        [{"metric": "f1", "op": ">=", "baseline_delta": -0.01}], {"f1": 0.885}, {"f1": 0.9}
    )
    shown = [metrics.format_value(v) for v in (result.value, result.baseline_value)]
    assert result.reason == f"f1 {shown[0]}, not >= baseline {shown[1]} −0.0100 = 0.8900"
