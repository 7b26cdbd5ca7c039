"""Chart data for Plotly, as plain lists and dicts: no HTML, no JavaScript built here.

A view puts `{"charts": [...]}` in its context, the template embeds it with
`{{ data|json_script:"chart-data" }}`, and `static/charts.js` draws each chart into the element
whose id is the chart's `target`. Every chart is one dict:

    {"target": "chart-metrics", "kind": "line" | "bar", "title": str,
     "x_title": str, "y_title": str, "x_category": bool,
     "series": [{"name": str, "x": [...], "y": [...]}, ...]}

Metric names and labels may come from MLflow and are untrusted: charts.js escapes them before
Plotly (which reads a little HTML in labels) sees them. Missing and non-finite values are None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .history import Histories, Points
from .models import ModelVersion

Chart = dict[str, Any]


def version_label(version: ModelVersion) -> str:
    return f"v{version.version}"


def _value(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def metrics_across_versions(
    versions: Sequence[ModelVersion], keys: Sequence[str], *, target: str = "chart-metrics"
) -> Chart:
    """One line per metric, versions in ascending order along x (a gap where a version lacks it)."""
    ordered = sorted(versions, key=lambda v: v.version)
    labels = [version_label(v) for v in ordered]
    return {
        "target": target,
        "kind": "line",
        "title": "Main metrics by version",
        "x_title": "version",
        "y_title": "",
        "x_category": True,
        "series": [
            {"name": key, "x": labels, "y": [_value(v.metrics or {}, key) for v in ordered]}
            for key in keys
        ],
    }


def metric_comparison(
    candidate: ModelVersion,
    baseline: ModelVersion,
    keys: Sequence[str],
    *,
    target: str = "chart-comparison",
) -> Chart:
    """A grouped bar chart: one group per metric, one bar per version."""
    return {
        "target": target,
        "kind": "bar",
        "title": "Metrics side by side",
        "x_title": "",
        "y_title": "",
        "x_category": True,
        "series": [
            {
                "name": version_label(version),
                "x": list(keys),
                "y": [_value(version.metrics or {}, key) for key in keys],
            }
            for version in (candidate, baseline)
        ],
    }


def history_chart(key: str, curves: Sequence[tuple[str, Points]], *, target: str) -> Chart:
    """One metric's history, one line per labelled curve, step along x."""
    return {
        "target": target,
        "kind": "line",
        "title": key,
        "x_title": "step",
        "y_title": "",
        "x_category": False,
        "series": [
            {"name": label, "x": [p[0] for p in points], "y": [p[1] for p in points]}
            for label, points in curves
        ],
    }


def history_charts(
    versions: Sequence[ModelVersion],
    histories: Histories,
    keys: Sequence[str],
    *,
    prefix: str = "chart-history",
) -> list[Chart]:
    """A history chart per metric that has a curve worth drawing (more than one step) for at least
    one of `versions`; targets are `<prefix>-<n>` in the order of `keys`."""
    charts: list[Chart] = []
    for key in keys:
        curves = [(version_label(v), histories.curve(v.run_id, key)) for v in versions if v.run_id]
        if any(len(points) > 1 for _, points in curves):
            charts.append(history_chart(key, curves, target=f"{prefix}-{len(charts)}"))
    return charts
