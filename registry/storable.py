"""Whether a mirror row can be stored as MLflow described it, and why not.

MLflow accepts what Quorum's database refuses: a model name longer than the column, a NUL
character in a description or a tag (PostgreSQL's text and jsonb cannot hold one), a number out of
the column's range. The sync checks every row it is about to write with `problem`, so a row that
cannot be stored is skipped with a reason a person can act on, the same on SQLite (which would
store an over-long name) as on PostgreSQL (which would refuse it), and the rest of the batch is
written. Whatever slips past these checks is caught when writing (see `registry.mirror`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from django.db import connection, models

NUL = "\x00"
# A skip reason or sync error is for reading, not for holding a hostile registry's megabytes.
TEXT_KEPT = 1000


def problem(row: models.Model, fields: Iterable[str]) -> str:
    """Why `row` cannot be stored as it is ("" when it can), checking these fields."""
    for name in fields:
        field = row._meta.get_field(name)
        assert isinstance(field, models.Field)  # a column of `row`, not a reverse relation
        value = getattr(row, field.attname)
        if value is None:
            continue
        found = _field_problem(field, value)
        if found:
            return f"its {name.replace('_', ' ')} field {found}"
    return ""


def _field_problem(field, value: Any) -> str:
    if isinstance(field, models.JSONField):
        return _json_problem(value)
    if isinstance(field, models.CharField | models.TextField):
        if not isinstance(value, str):
            return f"is not text ({type(value).__name__})"
        if field.choices and value not in {choice for choice, _ in field.choices}:
            return (
                f"“{printable(value, 40)}” is not one of {', '.join(c for c, _ in field.choices)}"
            )
        if NUL in value:
            return "holds a NUL character, which the database cannot store"
        if field.max_length is not None and len(value) > field.max_length:
            return f"is {len(value)} characters long; the mirror holds at most {field.max_length}"
        return ""
    if isinstance(field, models.IntegerField):
        low, high = connection.ops.integer_field_range(field.get_internal_type())
        if isinstance(value, bool) or not isinstance(value, int):
            return f"is not a whole number ({printable(repr(value), 40)})"
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{value} is out of the database's range"
    return ""


def _json_problem(value: Any) -> str:
    for item in _walk(value):
        if isinstance(item, str) and NUL in item:
            return "holds a NUL character, which the database cannot store"
        if isinstance(item, float) and not math.isfinite(item):
            return f"holds {item!r}, which JSON cannot store"
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        return f"cannot be stored as JSON: {error}"
    return ""


def _walk(value: Any):
    yield value
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)


def can_hold(text: str) -> bool:
    """Whether the database can hold (and so be queried for) this text at all: a name with a NUL
    character or a lone surrogate is never in the mirror, and asking for it is an error."""
    if NUL in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: Any, limit: int = TEXT_KEPT) -> str:
    """`text` as the sync may record it (a name or an error message from a hostile registry): no
    NUL characters or lone surrogates (spelled as escapes), at most `limit` characters."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8").replace(NUL, "\\x00")
    return text if len(text) <= limit else text[: limit - 1] + "…"
