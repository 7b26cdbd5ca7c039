"""Reviewer analytics as the staff page shows them: durations in words, the Plotly charts' data
(the shape `registry.charts` documents, drawn by `quorum/static/charts.js`), and the CSV rows.

The CSV is long-form, one number a row: `table, row, measure, value`, durations in seconds
(rounded to 0.1 s), so the download holds exactly the numbers the page's tables show in words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..audit.export import csv_cell
from .analytics import Report, Spread

CSV_HEADER = ["table", "row", "measure", "value"]


def duration_label(seconds: float | None) -> str:
    """'45 min', '3 h 20 min', '2 d 5 h'; '—' when nothing was measured."""
    if seconds is None:
        return "—"
    minutes = max(round(seconds / 60), 0)
    if minutes < 60:
        return f"{minutes} min" if minutes else "under 1 min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min".removesuffix(" 0 min")
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h".removesuffix(" 0 h")


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _spread_series(name: str, rows: list[tuple[str, Spread]]) -> list[dict[str, Any]]:
    x = [label for label, _ in rows]
    return [
        {
            "name": f"{name} {which}",
            "x": x,
            "y": [_hours(getattr(s, which)) for _, s in rows],
            "labels": [duration_label(getattr(s, which)) for _, s in rows],
        }
        for which in ("p50", "p90")
    ]


def _count_series(name: str, x: list[str], counts: list[int]) -> dict[str, Any]:
    return {"name": name, "x": x, "y": counts, "labels": [str(n) for n in counts]}


def _bar(target: str, title: str, y_title: str, series: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "target": target,
        "kind": "bar",
        "title": title,
        "x_title": "",
        "y_title": y_title,
        "x_category": True,
        "y_nonnegative": True,
        "series": series,
        "notes": [],
    }


def charts(report: Report) -> list[dict[str, Any]]:
    """The page's charts, each beside the table with the same numbers."""
    policies = [p.policy for p in report.policies]
    groups = [g.group for g in report.groups]
    return [
        _bar(
            "chart-policy-times",
            "By policy (p50 and p90, hours)",
            "hours",
            _spread_series("first review", [(p.policy, p.first_review) for p in report.policies])
            + _spread_series("quorum", [(p.policy, p.quorum) for p in report.policies]),
        ),
        _bar(
            "chart-group-times",
            "Time by group (hours)",
            "hours",
            _spread_series("first review", [(g.group, g.first_review) for g in report.groups])
            + _spread_series("last sign-off", [(g.group, g.sign_off) for g in report.groups]),
        ),
        _bar(
            "chart-bottleneck",
            "Where requests wait",
            "requests",
            [
                _count_series("signed last", groups, [g.signed_last for g in report.groups]),
                _count_series("still short", groups, [g.still_short for g in report.groups]),
            ],
        ),
        _bar(
            "chart-open-age",
            "Open requests by age",
            "requests",
            [
                _count_series(
                    "open requests",
                    [label for label, _ in report.open_by_age],
                    [n for _, n in report.open_by_age],
                )
            ],
        ),
        _bar(
            "chart-outcomes",
            "By policy",
            "count",
            [
                _count_series("rejected", policies, [p.rejected for p in report.policies]),
                _count_series("reminders", policies, [p.reminders for p in report.policies]),
                _count_series("escalations", policies, [p.escalations for p in report.policies]),
            ],
        ),
    ]


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _spread_rows(table: str, row: str, name: str, s: Spread) -> Iterator[list[str]]:
    yield [table, row, f"{name}_count", str(s.count)]
    yield [table, row, f"{name}_p50_seconds", _seconds(s.p50)]
    yield [table, row, f"{name}_p90_seconds", _seconds(s.p90)]


def csv_rows(report: Report) -> Iterator[list[str]]:
    """The header, then every number of the page (see the module). Policy and group names are
    written so that no spreadsheet reads them as formulas."""
    yield CSV_HEADER
    for table, row, measure, value in _numbers(report):
        yield [table, csv_cell(row), measure, value]


def _numbers(report: Report) -> Iterator[list[str]]:
    yield ["window", "", "days", str(report.days)]
    yield ["window", "", "since", report.since.isoformat()]
    yield ["window", "", "until", report.now.isoformat()]
    yield ["window", "", "reminders", str(report.reminders)]
    yield ["window", "", "escalations", str(report.escalations)]
    for p in report.policies:
        for measure in ("opened", "approved", "rejected", "rejected_by_gates"):
            yield ["policy", p.policy, measure, str(getattr(p, measure))]
        yield ["policy", p.policy, "reminders", str(p.reminders)]
        yield ["policy", p.policy, "escalations", str(p.escalations)]
        yield from _spread_rows("policy", p.policy, "first_review", p.first_review)
        yield from _spread_rows("policy", p.policy, "quorum", p.quorum)
    for g in report.groups:
        yield from _spread_rows("group", g.group, "first_review", g.first_review)
        yield from _spread_rows("group", g.group, "sign_off", g.sign_off)
        yield ["group", g.group, "signed_last", str(g.signed_last)]
        yield ["group", g.group, "still_short", str(g.still_short)]
    for label, count in report.open_by_age:
        yield ["open_by_age", label, "requests", str(count)]
