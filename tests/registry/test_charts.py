"""Chart data (registry/charts.py): the change chart, and hover labels spelt as the tables spell
them."""

from __future__ import annotations

import pytest

from registry import charts
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair():
    model = make_model("fraud")
    baseline = make_version(
        model, 1, metrics={"accuracy": 0.95, "log_loss": 0.30, "margin": 0.0, "drift": "NaN"}
    )
    candidate = make_version(
        model, 2, metrics={"accuracy": 0.96, "log_loss": 0.33, "margin": 0.2, "drift": 0.1}
    )
    return candidate, baseline


def test_a_change_chart_draws_a_0_01_difference_as_a_bar_coloured_by_direction(pair):
    candidate, baseline = pair

    chart = charts.metric_changes(candidate, baseline, ["accuracy", "log_loss", "margin", "drift"])

    [series] = chart["series"]
    assert chart["kind"] == "change" and chart["title"] == "Change of v2 against v1"
    assert series["y"] == ["accuracy", "log_loss"]
    assert series["x"] == [pytest.approx(100 * 0.01 / 0.95), pytest.approx(10.0)]
    # log_loss is better lower: going up is worse.
    assert series["tones"] == ["better", "worse"]
    assert series["labels"] == ["+0.0100 (+1.1%)", "+0.0300 (+10.0%)"]
    assert chart["notes"] == [
        "margin: +0.2000 (baseline is 0)",
        "drift: 0.1000 vs NaN, no change to draw",
    ]


def test_no_change_chart_when_no_metric_has_a_change_to_draw(pair):
    candidate, baseline = pair
    assert charts.change_charts(candidate, baseline, ["margin", "drift", "absent"]) == []
    assert len(charts.change_charts(candidate, baseline, ["accuracy"])) == 1


def test_hover_labels_read_as_the_tables_do_non_finite_values_included(pair):
    candidate, baseline = pair

    bars = charts.metric_comparison(candidate, baseline, ["accuracy", "drift"])

    assert [s["labels"] for s in bars["series"]] == [["0.9600", "0.1000"], ["0.9500", "NaN"]]
    assert [s["y"] for s in bars["series"]] == [[0.96, 0.1], [0.95, None]]


def test_holders_are_steps_per_target_with_the_metric_in_the_hover_text_not_on_an_axis(db):
    from datetime import UTC, datetime

    from registry.holdings import HolderTimeline, Holding

    model = make_model("fraud")
    day = [datetime(2026, 12, d, tzinfo=UTC) for d in (1, 2, 3)]
    timeline = HolderTimeline(
        model=model,
        mirrored_since=day[0],
        holdings=[
            Holding("Production", 4, day[0], True, None, end=day[1]),
            Holding("Production", 5, day[1], True, None),
            Holding("@champion", 4, day[0], True, None),
        ],
    )

    chart = charts.holders_over_time(
        timeline, {4: {"accuracy": 0.9160833}, 5: {"accuracy": 1.0}}, until=day[2]
    )

    assert chart is not None and "y2_title" not in chart
    production, champion = chart["series"]
    assert [s["name"] for s in chart["series"]] == ["Production", "@champion"]
    assert all(s["shape"] == "hv" and "axis" not in s for s in chart["series"])
    assert production["labels"] == [
        "v4 · accuracy 0.9161",
        "v4 · accuracy 0.9161",
        "",
        "v5 · accuracy 1.0000",
        "v5 · accuracy 1.0000",
    ]
    # Both held v4 at first: drawn side by side around the v4 row, not on top of each other.
    assert production["y"][0] != champion["y"][0]
    assert all(abs(y - 4) <= 0.15 + 1e-9 for y in (production["y"][0], champion["y"][0]))
    assert production["y"][2] is None  # the gap between two holdings
    assert chart["y_range"] == [3.5, 5.5]  # a tick on every row held
