"""What a metric's number means: how it is stored, which way is better, whether a change is an
improvement.

Shared by the registry's comparison pages and the review app's request page and gates, so a metric
reads the same everywhere. Directions come from settings: `QUORUM_METRIC_DIRECTIONS` names
metrics explicitly; otherwise a name containing one of `QUORUM_LOWER_IS_BETTER` (loss, error,
rmse, ...) is better lower, and everything else is better higher.

MLflow stores NaN and infinities; JSON has no spelling for them (PostgreSQL's jsonb and SQLite's
JSON check refuse the bare `NaN` Python writes). The mirror keeps them as the strings "NaN",
"Infinity" and "-Infinity" wherever a metric value sits in JSON: version metrics, history points,
the metric snapshots of requests and votes, gate results, audit details and outgoing webhooks.
`encode` writes that form, `number` reads any stored value back as a float (or None when there
is none), and `non_finite_label` is how a page or a mail shows a non-finite one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings

NAN, INFINITY, MINUS_INFINITY = "NaN", "Infinity", "-Infinity"
_DECODED = {NAN: math.nan, INFINITY: math.inf, MINUS_INFINITY: -math.inf}
_SHOWN = {NAN: "NaN", INFINITY: "∞", MINUS_INFINITY: "−∞"}

StoredValue = float | int | str


def encode(value: float) -> StoredValue:
    """A metric value as the mirror stores it in JSON: finite numbers as they are, NaN and
    infinities as "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return NAN if math.isnan(value) else INFINITY if value > 0 else MINUS_INFINITY
    return value


def encode_all(metrics: Mapping[str, float]) -> dict[str, StoredValue]:
    return {key: encode(value) for key, value in metrics.items()}


def encode_json(value: Any) -> Any:
    """`value` with every non-finite float inside it (dicts, lists, tuples) encoded: what any
    JSON column or body holding metric values is given (gate results, audit details)."""
    if isinstance(value, float):
        return encode(value)
    if isinstance(value, Mapping):
        return {key: encode_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode_json(item) for item in value]
    return value


def number(value: Any) -> float | None:
    """A stored metric value as a float (NaN and infinities included); None when it is missing
    or not a metric value at all."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _DECODED.get(value)
    return None


def is_finite(value: Any) -> bool:
    """True for a stored value that is a real number (not missing, NaN or infinite)."""
    decoded = number(value)
    return decoded is not None and math.isfinite(decoded)


def non_finite_label(value: Any) -> str | None:
    """How pages and mails show a non-finite value (stored or float): "NaN", "∞" or "−∞";
    None for anything else."""
    decoded = number(value)
    if decoded is None or math.isfinite(decoded):
        return None
    return _SHOWN[encode(decoded)]  # type: ignore[index]


# -- how a number reads ----------------------------------------------------------------------
# One spelling for every metric value, threshold and change a person reads: the pages' filters
# (`registry_extras`), the gates' reasons, the mails and the charts' hover text all call these, so
# the same value reads the same everywhere.


def _finite(value: Any) -> float | None:
    decoded = number(value)
    return decoded if decoded is not None and math.isfinite(decoded) else None


def format_value(value: Any) -> str:
    """A metric value short enough for a table cell: 4 decimals, or scientific when tiny/huge;
    NaN and infinities (as floats or as the mirror stores them) read "NaN", "∞", "−∞"; a missing
    value "—"."""
    finite = _finite(value)
    if finite is None:
        label = non_finite_label(value)
        if label is not None:
            return label
        return "—" if value is None or value == "" else str(value)
    # Below 0.0001 four decimals would read as zero; above a million they stop being readable.
    if finite != 0 and (abs(finite) < 1e-4 or abs(finite) >= 1e6):
        text = f"{abs(finite):.3e}"
    elif abs(finite) >= 1000:
        text = f"{abs(finite):,.1f}"
    else:
        text = f"{abs(finite):.4f}"
    return f"−{text}" if finite < 0 else text


def format_change(value: Any) -> str:
    """A change with its sign: +0.0123, −0.0040, ±0; "—" when there is none."""
    finite = _finite(value)
    if finite is None:
        return "—"
    if finite == 0:
        return "±0"
    text = format_value(abs(finite))
    return f"+{text}" if finite > 0 else f"−{text}"


def format_relative(value: Any) -> str:
    """A relative change as a signed percentage (0.0123 -> +1.2%, -0.05 -> −5.0%); "" when
    there is none."""
    finite = _finite(value)
    if finite is None:
        return ""
    text = f"{abs(finite) * 100:.1f}%"
    return f"+{text}" if finite >= 0 else f"−{text}"


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


def delta(name: str, candidate: StoredValue | None, baseline: StoredValue | None) -> Delta:
    """How `candidate` compares with `baseline` on metric `name` (stored values or floats)."""
    new, old = number(candidate), number(baseline)
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return Delta(change=None, relative=None, improved=None)
    change = new - old
    relative = change / abs(old) if old else None
    if change == 0:
        return Delta(change=0.0, relative=0.0 if old else None, improved=None)
    better = change > 0 if direction(name) is Direction.HIGHER else change < 0
    return Delta(change=change, relative=relative, improved=better)


def ordered_keys(keys: Iterable[str], *, limit: int | None = None) -> list[str]:
    """Metric names with `QUORUM_MAIN_METRICS` first (in their order), then the rest by name."""
    present = set(keys)
    main = [key for key in settings.QUORUM_MAIN_METRICS if key in present]
    rest = sorted(present.difference(main))
    ordered = main + rest
    return ordered if limit is None else ordered[:limit]
