"""Side-by-side comparison of two model versions: metric rows with deltas, params and tags diffs.

Plain functions over plain mappings, so the registry's compare page and the review app's request
page (candidate against the current holder of the target) show exactly the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .metrics import Delta, Direction, delta, direction, ordered_keys
from .models import ModelVersion, Stage
from .quorum_tags import user_tags

CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class MetricRow:
    key: str
    candidate: float | None
    baseline: float | None
    direction: Direction
    delta: Delta


@dataclass(frozen=True)
class DiffRow:
    key: str
    candidate: str | None  # None: the key is absent on that side
    baseline: str | None

    @property
    def changed(self) -> bool:
        return self.candidate != self.baseline

    @property
    def added(self) -> bool:
        return self.baseline is None and self.candidate is not None

    @property
    def removed(self) -> bool:
        return self.candidate is None and self.baseline is not None


@dataclass(frozen=True)
class Comparison:
    candidate: ModelVersion
    baseline: ModelVersion
    metrics: list[MetricRow]
    params: list[DiffRow]
    tags: list[DiffRow]

    @property
    def changed_params(self) -> int:
        return sum(row.changed for row in self.params)

    @property
    def changed_tags(self) -> int:
        return sum(row.changed for row in self.tags)


def metric_rows(candidate: Mapping[str, float], baseline: Mapping[str, float]) -> list[MetricRow]:
    """One row per metric either side has, main metrics first, each with its delta."""
    return [
        MetricRow(
            key=key,
            candidate=candidate.get(key),
            baseline=baseline.get(key),
            direction=direction(key),
            delta=delta(key, candidate.get(key), baseline.get(key)),
        )
        for key in ordered_keys([*candidate, *baseline])
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def diff_rows(candidate: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[DiffRow]:
    """One row per key either side has, sorted by key; values compared as MLflow's strings."""
    return [
        DiffRow(key=key, candidate=_text(candidate.get(key)), baseline=_text(baseline.get(key)))
        for key in sorted({*candidate, *baseline})
    ]


def compare_versions(candidate: ModelVersion, baseline: ModelVersion) -> Comparison:
    """Everything the comparison pages show about two versions, computed from the mirror."""
    return Comparison(
        candidate=candidate,
        baseline=baseline,
        metrics=metric_rows(candidate.metrics or {}, baseline.metrics or {}),
        params=diff_rows(candidate.params or {}, baseline.params or {}),
        # Quorum's own tags (a pin, a proof) differ between any two versions and say nothing of
        # the models: the version pages say them apart (`registry.quorum_tags`).
        tags=diff_rows(user_tags(candidate.tags), user_tags(baseline.tags)),
    )


def default_baseline(
    version: ModelVersion, others: Iterable[ModelVersion] | None = None
) -> ModelVersion | None:
    """What a version is naturally compared with: the model's current Production version (the
    newest, if several), else the `champion` alias holder; never the version itself, never a
    deleted one.

    `others` are the model's versions when the caller has them already (no query then);
    otherwise they are read in one query. `version.model` should be loaded (its aliases are read).
    """
    if others is None:
        others = ModelVersion.objects.live().filter(model_id=version.model_id)
    candidates = [v for v in others if v.pk != version.pk and not v.deleted]
    production = [v for v in candidates if v.stage == Stage.PRODUCTION]
    if production:
        return max(production, key=lambda v: v.version)
    champion = (version.model.aliases or {}).get(CHAMPION_ALIAS)
    return next((v for v in candidates if v.version == champion), None)
