"""Chart data for Plotly, as plain lists and dicts: no HTML, no JavaScript built here.

A view puts `{"charts": [...]}` in its context, the template embeds it with
`{{ data|json_script:"chart-data" }}`, and `quorum/static/charts.js` draws each chart into the
element whose id is the chart's `target`. Every chart is one dict:

    {"target": "chart-metrics", "kind": "line" | "bar" | "change", "title": str,
     "x_title": str, "y_title": str, "x_category": bool,
     "series": [{"name": str, "x": [...], "y": [...], "labels": [str, ...]}, ...],
     "notes": [str, ...]}

An optional `"y_nonnegative": true` keeps the y axis from going below zero (counts, durations).

`labels` are the points' values as every page and mail spells them (`metrics.format_value`):
the hover text shows them, so a chart never rounds a value differently from the table beside
it. A "change" chart is horizontal: `x` holds each metric's change against the baseline in
percent, `y` the metric names, and the series adds `tones` ("better", "worse", "same") that
colour each bar.

Metric names and labels may come from MLflow and are untrusted: charts.js escapes them before
Plotly (which reads a little HTML in labels) sees them. Missing and non-finite values are None in
`y` (a gap: Plotly cannot draw NaN or ∞); each non-finite one is named in `notes` ("v3: NaN",
"v2: ∞ at step 7"), which charts.js writes under the chart as text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import metrics
from .history import Histories, Points
from .holdings import HolderTimeline
from .models import ModelVersion

Chart = dict[str, Any]


def version_label(version: ModelVersion) -> str:
    return f"v{version.version}"


# Non-finite points named per series under a chart; the rest are counted.
NOTES_PER_SERIES = 5


def _y(stored: Any) -> float | None:
    """A stored metric value as Plotly draws it: a finite number, or None (a gap)."""
    number = metrics.number(stored)
    return number if number is not None and math.isfinite(number) else None


def _notes(name: str, points: Sequence[tuple[Any, Any]], *, where: str = "for") -> list[str]:
    """Names the non-finite values among (x, stored value) points, as "v2: NaN at step 3, ∞ at
    step 9 (not drawn)" (`where` = "at step") or "accuracy: NaN for v3 (not drawn)"."""
    found = [
        f"{label} {where} {x}"
        for x, stored in points
        if (label := metrics.non_finite_label(stored)) is not None
    ]
    if not found:
        return []
    shown = ", ".join(found[:NOTES_PER_SERIES])
    more = len(found) - NOTES_PER_SERIES
    return [f"{name}: {shown}" + (f" and {more} more" if more > 0 else "") + " (not drawn)"]


def metrics_across_versions(
    versions: Sequence[ModelVersion], keys: Sequence[str], *, target: str = "chart-metrics"
) -> Chart:
    """One line per metric, versions in ascending order along x (a gap where a version lacks it)."""
    ordered = sorted(versions, key=lambda v: v.version)
    labels = [version_label(v) for v in ordered]
    stored = {key: [(v.metrics or {}).get(key) for v in ordered] for key in keys}
    return {
        "target": target,
        "kind": "line",
        "title": "Main metrics by version",
        "x_title": "version",
        "y_title": "",
        "x_category": True,
        "series": [
            {
                "name": key,
                "x": labels,
                "y": [_y(value) for value in stored[key]],
                "labels": [metrics.format_value(value) for value in stored[key]],
            }
            for key in keys
        ],
        "notes": [
            note
            for key in keys
            for note in _notes(key, list(zip(labels, stored[key], strict=True)))
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
    sides = [
        (version_label(v), [(v.metrics or {}).get(key) for key in keys])
        for v in (candidate, baseline)
    ]
    return {
        "target": target,
        "kind": "bar",
        "title": "Metrics side by side",
        "x_title": "",
        "y_title": "",
        "x_category": True,
        "series": [
            {
                "name": label,
                "x": list(keys),
                "y": [_y(value) for value in values],
                "labels": [metrics.format_value(value) for value in values],
            }
            for label, values in sides
        ],
        "notes": [
            note
            for label, values in sides
            for note in _notes(label, list(zip(keys, values, strict=True)))
        ],
    }


def metric_changes(
    candidate: ModelVersion,
    baseline: ModelVersion,
    keys: Sequence[str],
    *,
    target: str = "chart-change",
) -> Chart:
    """The candidate's change against the baseline, one horizontal bar per metric, in percent of
    the baseline's value: side by side, 0.95 and 0.96 look alike; as a change, +1.1% is a bar of
    its own. Metrics differ in scale, so the change is relative; each bar's label gives the
    absolute change too. Bars are coloured by `metrics.delta`: better, worse (a lower-is-better
    metric improves by going down) or the same. A metric with no relative change (missing or
    non-finite on one side, or a baseline of zero) is named in `notes` instead."""
    names, changes, tones, labels, notes = [], [], [], [], []
    for key in keys:
        new, old = (candidate.metrics or {}).get(key), (baseline.metrics or {}).get(key)
        change = metrics.delta(key, new, old)
        if change.relative is None:
            if change.change is not None:
                notes.append(f"{key}: {metrics.format_change(change.change)} (baseline is 0)")
            elif new is not None and old is not None:
                shown = f"{metrics.format_value(new)} vs {metrics.format_value(old)}"
                notes.append(f"{key}: {shown}, no change to draw")
            continue
        names.append(key)
        changes.append(change.relative * 100)
        tones.append(
            "same" if change.improved is None else "better" if change.improved else "worse"
        )
        labels.append(
            f"{metrics.format_change(change.change)} ({metrics.format_relative(change.relative)})"
        )
    return {
        "target": target,
        "kind": "change",
        "title": f"Change of {version_label(candidate)} against {version_label(baseline)}",
        "x_title": "change, % of the baseline",
        "y_title": "",
        "x_category": False,
        "series": [{"name": "change", "x": changes, "y": names, "labels": labels, "tones": tones}],
        "notes": notes,
    }


# Bars in a change chart: every metric a table shows, up to a chart's readable height.
CHANGE_BARS = 12


def change_charts(
    candidate: ModelVersion, baseline: ModelVersion, keys: Sequence[str]
) -> list[Chart]:
    """`metric_changes` for the first CHANGE_BARS of `keys`, as a list: empty when no metric has
    a change to draw."""
    chart = metric_changes(candidate, baseline, keys[:CHANGE_BARS])
    return [chart] if chart["series"][0]["x"] else []


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
            {
                "name": label,
                "x": [p[0] for p in points],
                "y": [_y(p[1]) for p in points],
                "labels": [metrics.format_value(p[1]) for p in points],
            }
            for label, points in curves
        ],
        "notes": [
            note
            for label, points in curves
            for note in _notes(label, [(p[0], p[1]) for p in points], where="at step")
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


def holders_over_time(
    timeline: HolderTimeline,
    metrics_by_version: dict[int, dict],
    *,
    until: datetime,
    target: str = "chart-holders",
) -> Chart | None:
    """Which version held each target over time: one step line per target, flat at its
    version's number from the start of each holding to its end (`until` while it lasts). The
    main metric of each holder is in the hover text ("v4 · accuracy 0.9161", formatted as every
    table formats it), not on an axis of its own: versions and metric values have no common
    scale. Lines of targets held by the same version run side by side, a little apart, instead
    of hiding each other. None when nothing ever held anything."""
    targets = timeline.targets()
    if not targets:
        return None
    key = next(iter(metrics.ordered_keys({k for m in metrics_by_version.values() for k in m})), "")
    series: list[dict[str, Any]] = []
    for index, name in enumerate(targets):
        # Up to ±0.15 of a version apart, centred on the version's row.
        offset = 0.0 if len(targets) == 1 else 0.3 * (index / (len(targets) - 1) - 0.5)

        def described(holding, key=key) -> str:
            value = metrics_by_version.get(holding.version, {}).get(key) if key else None
            shown = f" · {key} {metrics.format_value(value)}" if key and value is not None else ""
            return f"v{holding.version}{shown}"

        xs, versions = _segments(timeline.of(name), until, lambda h: h.version)
        _, labels = _segments(timeline.of(name), until, described)
        series.append(
            {
                "name": name,
                "x": xs,
                "y": [None if v is None else v + offset for v in versions],
                "labels": ["" if label is None else label for label in labels],
                "shape": "hv",
            }
        )
    notes = []
    if timeline.mirrored_since is not None:
        notes.append(
            f"Before {timeline.mirrored_since:%Y-%m-%d %H:%M} UTC Quorum was not mirroring this "
            "model: who held what then is unknown."
        )
    held = [h.version for h in timeline.holdings]
    return {
        "target": target,
        "kind": "line",
        "title": "Holders over time",
        # Half a row beyond the lowest and highest version held: every row has its tick, and
        # the lines drawn a little apart stay beside their own row.
        "y_range": [min(held) - 0.5, max(held) + 0.5],
        "x_title": "",
        "y_title": "version",
        "y_integer": True,
        "x_category": False,
        "x_type": "date",
        "series": series,
        "notes": notes,
    }


def _segments(holdings, until: datetime, value) -> tuple[list, list]:
    """x and y of one flat segment per holding, a gap (None) between segments."""
    xs: list = []
    ys: list = []
    for holding in holdings:
        if xs:
            xs.append(holding.start.isoformat())
            ys.append(None)
        xs += [holding.start.isoformat(), (holding.end or until).isoformat()]
        ys += [value(holding)] * 2
    return xs, ys
