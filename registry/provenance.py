"""When each value of a metric was logged, against the version's registration: whether the value
a gate reads was replaced after the version was registered.

MLflow keeps every value logged under a metric key (step, value, timestamp) and reports the one
with the highest step (then the latest timestamp) as the run's value. A second value logged after
the version was registered (`log_metric` again, say with a higher step) changes what every page
and gate reads after the fact: the review engine lets no auto-approve gate fire on it. A metric
first logged after registration (an evaluation step that runs after registering) has one value
and reads as usual. Several values logged after registration count as replaced: the safe side.

Histories are read fresh from MLflow (one call per run and key) and refresh the `MetricHistory`
cache the pages chart. When MLflow does not answer, the cache serves if its latest value is the
one the mirror holds; otherwise the history is unknown and `reason` says why.

Metric timestamps are the logging client's clock and a version's creation the server's: a skew
between the two moves the line by as much.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from . import metrics
from .mlflow_client import MlflowError, RegistryClient
from .models import MetricHistory, ModelVersion

# The points a pin keeps to show on a request's page: the latest ones.
POINTS_KEPT = 20


def logged_at(timestamp_ms: int | None) -> str:
    """An MLflow timestamp as pages and reasons write it: "2026-12-06 10:31 UTC"."""
    if timestamp_ms is None:
        return "an unknown time"
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Provenance:
    """One metric of one version: the value the mirror holds and the history behind it."""

    key: str
    value: metrics.StoredValue | None
    # [[step, value, timestamp_ms], ...] ordered by step; None when the history is unknown.
    points: list[list] | None
    registered_at: int | None  # the version's creation, MLflow milliseconds
    reason: str = ""  # why the history is unknown

    @property
    def known(self) -> bool:
        return self.points is not None and self.registered_at is not None

    @property
    def latest(self) -> list | None:
        if not self.points:
            return None
        return max(self.points, key=lambda p: (p[0], _time(p)))

    @property
    def replaced(self) -> bool:
        """Another value was logged before one logged after the version's registration."""
        if not self.known or len(self.points or []) < 2:
            return False
        first = min(self.points or [], key=_time)
        return any(
            _time(p) > (self.registered_at or 0) for p in self.points or [] if p is not first
        )

    @property
    def trusted(self) -> bool:
        """The value may decide without people: its history is known and it was not replaced."""
        return self.known and not self.replaced

    def words(self) -> str:
        """Why the value may not decide without people, or "" when it may."""
        if not self.known:
            return f"the history of {self.key} is unknown ({self.reason or 'not read'})"
        if not self.replaced:
            return ""
        latest = (self.latest or []) + [None, None, None]
        return (
            f"{self.key} was logged again after the version was registered "
            f"({logged_at(self.registered_at)}): {len(self.points or [])} values, the one read "
            f"{metrics.format_value(latest[1])} at step {latest[0]} on {logged_at(latest[2])}"
        )

    def as_json(self) -> dict:
        latest = self.latest
        return {
            "value": self.value,
            "step": latest[0] if latest else None,
            "timestamp": _time(latest) if latest else None,
            "history_known": self.known,
            "replaced": self.replaced,
            "why": self.words(),
            "points": (self.points or [])[-POINTS_KEPT:],
            "point_count": len(self.points or []),
        }


def _time(point: list) -> int:
    # Histories cached by earlier releases may hold [step, value] only.
    return int(point[2] or 0) if len(point) > 2 else 0


def read(
    version: ModelVersion, keys: Iterable[str], *, client: RegistryClient | None = None
) -> dict[str, Provenance]:
    """The provenance of `keys` of `version`'s run metrics, by key. After MLflow fails once the
    cache alone answers: an outage costs one timeout, not one per metric."""
    keys = sorted(set(keys))
    result: dict[str, Provenance] = {}
    if not keys:
        return result
    cached = {
        row.key: row.points
        for row in MetricHistory.objects.filter(run_id=version.run_id, key__in=keys)
    }
    failure = "" if version.run_id else "the version has no run"
    for key in keys:
        held = (version.metrics or {}).get(key)
        points, reason = None, failure
        if not failure:
            try:
                client = client or RegistryClient()
                history = client.get_metric_history(version.run_id, key)
            except MlflowError as error:
                failure = reason = f"MLflow did not give its history: {error}"
            else:
                points = [[p.step, metrics.encode(p.value), p.timestamp] for p in history]
                MetricHistory.objects.update_or_create(
                    run_id=version.run_id, key=key, defaults={"points": points}
                )
        if points is None and cached.get(key):
            stale = Provenance(key, held, cached[key], version.creation_timestamp)
            if stale.latest is not None and stale.latest[1] == held:
                points = cached[key]
        result[key] = Provenance(key, held, points, version.creation_timestamp, reason)
    return result
