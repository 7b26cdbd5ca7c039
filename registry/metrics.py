"""What a metric's number means: which way is better, and whether a change is an improvement.

Shared by the registry's comparison pages and the review app's request page and gates, so a metric
reads the same everywhere. Directions come from settings: `QUORUM_METRIC_DIRECTIONS` names
metrics explicitly; otherwise a name containing one of `QUORUM_LOWER_IS_BETTER` (loss, error,
rmse, ...) is better lower, and everything else is better higher.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings


class Direction(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


def direction(name: str) -> Direction:
    """Which way `name` improves: an explicit setting first, then the lower-is-better words."""
    explicit = settings.QUORUM_METRIC_DIRECTIONS.get(name, "").lower()
    if explicit in (Direction.HIGHER, Direction.LOWER):
        return Direction(explicit)
    lowered = name.lower()
    if any(word.lower() in lowered for word in settings.QUORUM_LOWER_IS_BETTER):
        return Direction.LOWER
    return Direction.HIGHER


@dataclass(frozen=True)
class Delta:
    """`candidate - baseline`, and what it means for a metric with this direction.

    `change` and `relative` are None when either side is missing (or not a finite number);
    `relative` is also None when the baseline is zero. `improved` is True or False when the values
    differ and None when they are equal or not comparable.
    """

    change: float | None
    relative: float | None
    improved: bool | None

    @property
    def worse(self) -> bool:
        return self.improved is False


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def delta(name: str, candidate: float | None, baseline: float | None) -> Delta:
    """How `candidate` compares with `baseline` on metric `name`."""
    if not (_finite(candidate) and _finite(baseline)):
        return Delta(change=None, relative=None, improved=None)
    change = candidate - baseline
    relative = change / abs(baseline) if baseline else None
    if change == 0:
        return Delta(change=0.0, relative=0.0 if baseline else None, improved=None)
    better = change > 0 if direction(name) is Direction.HIGHER else change < 0
    return Delta(change=change, relative=relative, improved=better)


def ordered_keys(keys: Iterable[str], *, limit: int | None = None) -> list[str]:
    """Metric names with `QUORUM_MAIN_METRICS` first (in their order), then the rest by name."""
    present = set(keys)
    main = [key for key in settings.QUORUM_MAIN_METRICS if key in present]
    rest = sorted(present.difference(main))
    ordered = main + rest
    return ordered if limit is None else ordered[:limit]
