"""Metric history for charts, fetched from MLflow the first time a page needs it, then cached.

The bulk sync stores only each run's final metric values: fetching every metric's history for
every run would cost one MLflow call per metric per run. Pages ask here instead. What is in the
`MetricHistory` cache costs one query; what is missing is fetched through `RegistryClient` (one
call per run and key) and stored. If MLflow does not answer, the caller gets what the cache had and
`unavailable=True`, so the page can say so instead of failing.

The review app's request page reuses `version_histories` for its candidate/baseline curves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from . import metrics
from .metrics import ordered_keys
from .mlflow_client import MlflowError, RegistryClient
from .models import MetricHistory, ModelVersion

logger = logging.getLogger(__name__)

# Each missing history is one MLflow call (~50 ms): a page charts at most this many per run.
HISTORY_KEYS_PER_RUN = 8

# [[step, value], ...] ordered by step; a value as the mirror stores metrics (`registry.metrics`):
# a number, or "NaN", "Infinity", "-Infinity" (None in histories cached by earlier releases).
Points = list[list[float | str | None]]


@dataclass
class Histories:
    """Curves by run id and metric key. `unavailable` is set when MLflow did not answer for some
    history the cache did not have; those curves are simply absent."""

    curves: dict[str, dict[str, Points]] = field(default_factory=dict)
    unavailable: bool = False
    fetched: int = 0  # how many histories came from MLflow during this call

    def curve(self, run_id: str, key: str) -> Points:
        return self.curves.get(run_id, {}).get(key, [])


def metric_histories(
    wanted: Iterable[tuple[str, str]], *, client: RegistryClient | None = None
) -> Histories:
    """The histories of the (run id, metric key) pairs asked for, from the cache or MLflow.

    One query reads the cache, one insert stores what was fetched. After the first MLflow
    failure nothing more is fetched: an outage costs one timeout, not one per metric.
    """
    pairs = sorted({(run_id, key) for run_id, key in wanted if run_id and key})
    result = Histories()
    if not pairs:
        return result
    run_ids = {run_id for run_id, _ in pairs}
    keys = {key for _, key in pairs}
    cached = {
        (row.run_id, row.key): row.points
        for row in MetricHistory.objects.filter(run_id__in=run_ids, key__in=keys)
    }
    fresh: list[MetricHistory] = []
    for run_id, key in pairs:
        points = cached.get((run_id, key))
        if points is None:
            if result.unavailable:
                continue
            try:
                client = client or RegistryClient()
                history = client.get_metric_history(run_id, key)
            except MlflowError as error:
                logger.warning("metric history for run %s unavailable: %s", run_id, error)
                result.unavailable = True
                continue
            points = [[p.step, metrics.encode(p.value), p.timestamp] for p in history]
            fresh.append(MetricHistory(run_id=run_id, key=key, points=points))
        result.curves.setdefault(run_id, {})[key] = [[step, value] for step, value, *_ in points]
    if fresh:
        # Two pages may fetch the same history at once; the first insert wins, both are equal.
        MetricHistory.objects.bulk_create(fresh, ignore_conflicts=True)
        result.fetched = len(fresh)
    return result


def history_keys(version: ModelVersion, *, limit: int = HISTORY_KEYS_PER_RUN) -> list[str]:
    """The metrics of a version worth charting: main metrics first, capped at `limit`."""
    return ordered_keys(version.metrics or {}, limit=limit)


def version_histories(
    versions: Sequence[ModelVersion],
    *,
    keys: Iterable[str] | None = None,
    client: RegistryClient | None = None,
) -> Histories:
    """The histories of `keys` (default: each version's `history_keys`) for these versions' runs.

    With several versions and no `keys`, the union of their charted keys is fetched for each, so
    overlaid curves have both sides.
    """
    if keys is None:
        keys = ordered_keys(
            {key for version in versions for key in history_keys(version)},
            limit=HISTORY_KEYS_PER_RUN,
        )
    keys = list(keys)
    return metric_histories(
        (
            (version.run_id, key)
            for version in versions
            for key in keys
            if version.run_id and key in (version.metrics or {})
        ),
        client=client,
    )
