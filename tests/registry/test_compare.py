"""Metric directions, deltas and the params/tags diff that the comparison pages are built from."""

from __future__ import annotations

import math

import pytest

from registry.compare import compare_versions, default_baseline, diff_rows, metric_rows
from registry.metrics import Direction, delta, direction, ordered_keys
from registry.models import Stage
from tests.factories import make_model, make_version


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("accuracy", Direction.HIGHER),
        ("f1", Direction.HIGHER),
        ("roc_auc", Direction.HIGHER),
        ("log_loss", Direction.LOWER),
        ("val_loss", Direction.LOWER),
        ("RMSE", Direction.LOWER),
        ("mean_absolute_error", Direction.LOWER),
        ("p95_latency_ms", Direction.LOWER),
    ],
)
def test_direction_follows_the_lower_is_better_words(name, expected):
    assert direction(name) is expected


def test_explicit_directions_override_the_name_rule(settings):
    settings.QUORUM_METRIC_DIRECTIONS = {"error_budget_left": "higher", "size_mb": "lower"}
    assert direction("error_budget_left") is Direction.HIGHER
    assert direction("size_mb") is Direction.LOWER
    assert direction("error_rate") is Direction.LOWER


def test_lower_is_better_words_come_from_settings(settings):
    settings.QUORUM_LOWER_IS_BETTER = ["cost"]
    assert direction("training_cost") is Direction.LOWER
    assert direction("log_loss") is Direction.HIGHER


def test_delta_of_a_higher_is_better_metric():
    up = delta("accuracy", 0.90, 0.80)
    assert up.change == pytest.approx(0.10) and up.relative == pytest.approx(0.125)
    assert up.improved is True
    down = delta("accuracy", 0.70, 0.80)
    assert down.improved is False and down.worse


def test_delta_of_a_lower_is_better_metric():
    assert delta("log_loss", 0.30, 0.40).improved is True
    assert delta("log_loss", 0.50, 0.40).improved is False


def test_equal_missing_and_non_finite_values_are_neither_better_nor_worse():
    same = delta("f1", 0.5, 0.5)
    assert same.change == 0 and same.improved is None and not same.worse
    assert delta("f1", None, 0.5) == delta("f1", 0.5, None)
    assert delta("f1", None, 0.5).change is None and delta("f1", None, 0.5).improved is None
    assert delta("f1", math.nan, 0.5).improved is None
    assert delta("f1", 0.5, math.inf).change is None


def test_relative_change_against_zero_is_undefined():
    zero = delta("errors", 3.0, 0.0)
    assert zero.change == 3.0 and zero.relative is None and zero.improved is False


def test_negative_baseline_uses_its_magnitude_for_the_relative_change():
    assert delta("score", -1.0, -2.0).relative == pytest.approx(0.5)


def test_main_metrics_come_first_in_settings_order(settings):
    settings.QUORUM_MAIN_METRICS = ["f1", "accuracy"]
    keys = ["zeta", "accuracy", "alpha", "f1"]
    assert ordered_keys(keys) == ["f1", "accuracy", "alpha", "zeta"]
    assert ordered_keys(keys, limit=3) == ["f1", "accuracy", "alpha"]


def test_metric_rows_cover_both_sides_with_deltas():
    rows = metric_rows(
        {"accuracy": 0.9, "log_loss": 0.3, "only_a": 1.0},
        {"accuracy": 0.8, "log_loss": 0.2, "only_b": 2.0},
    )
    by_key = {row.key: row for row in rows}
    assert [row.key for row in rows][:2] == ["accuracy", "log_loss"]
    assert by_key["accuracy"].delta.improved is True
    assert by_key["log_loss"].delta.improved is False
    assert by_key["log_loss"].direction is Direction.LOWER
    assert (by_key["only_a"].candidate, by_key["only_a"].baseline) == (1.0, None)
    assert by_key["only_b"].delta.change is None


def test_diff_rows_flag_changed_added_and_removed_keys():
    rows = diff_rows(
        {"alpha": 0.1, "penalty": "l1", "new": "x"}, {"alpha": "0.1", "penalty": "l2", "old": "y"}
    )
    by_key = {row.key: row for row in rows}
    assert [row.key for row in rows] == ["alpha", "new", "old", "penalty"]
    assert not by_key["alpha"].changed  # MLflow stores params as strings: 0.1 equals "0.1"
    assert by_key["penalty"].changed and not by_key["penalty"].added
    assert by_key["new"].added and by_key["new"].changed
    assert by_key["old"].removed and by_key["old"].candidate is None


@pytest.mark.django_db
def test_compare_versions_counts_differences():
    model = make_model("cmp")
    a = make_version(model, metrics={"f1": 0.8}, params={"alpha": 1, "depth": 3}, tags={"t": "x"})
    b = make_version(model, metrics={"f1": 0.7}, params={"alpha": 2, "depth": 3}, tags={"t": "x"})
    comparison = compare_versions(b, a)
    assert comparison.candidate == b and comparison.baseline == a
    assert comparison.changed_params == 1 and comparison.changed_tags == 0
    assert comparison.metrics[0].delta.improved is False


@pytest.mark.django_db
def test_default_baseline_is_production_then_champion_never_itself_nor_deleted():
    model = make_model("base")
    v1 = make_version(model, stage=Stage.PRODUCTION)
    v2 = make_version(model, aliases=["champion"])
    v3 = make_version(model)
    v4 = make_version(model, stage=Stage.PRODUCTION, deleted=True)
    model.refresh_from_db()
    for version in (v1, v2, v3, v4):
        version.model = model
    assert default_baseline(v3) == v1
    assert default_baseline(v1) == v2  # the Production version itself: fall back to champion
    assert default_baseline(v2, [v1, v2, v3]) == v1
    v1.stage = Stage.ARCHIVED
    v1.save()
    assert default_baseline(v3) == v2
    assert default_baseline(v2) is None  # the champion itself, and nothing in Production


def test_numbers_read_alike_on_every_page(settings):
    from types import SimpleNamespace

    from registry.templatetags.registry_extras import metric, mlflow_run_url, percent, signed

    assert [metric(v) for v in (0.91234, 0, 1234.5, 2e-5, 3e7, None, math.nan)] == [
        "0.9123",
        "0.0000",
        "1,234.5",
        "2.000e-05",
        "3.000e+07",
        "—",
        "NaN",
    ]
    assert [signed(v) for v in (0.0002, -0.01, 0, None)] == ["+0.0002", "−0.0100", "±0", "—"]
    assert [percent(v) for v in (0.0123, -0.05, None)] == ["+1.2%", "−5.0%", ""]
    settings.MLFLOW_UI_URL = "http://mlflow.local"
    run = SimpleNamespace(run_id="abc", experiment_id="7")
    assert mlflow_run_url(run) == "http://mlflow.local/#/experiments/7/runs/abc"
    assert mlflow_run_url(SimpleNamespace(run_id="", experiment_id="7")) == ""
