"""The audit trail as CSV: `manage.py export_audit` and the audit page's download.

Each row keeps the event's hashes, so the file can be checked against the chain later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC

from ..models import AuditEvent

CSV_COLUMNS = [
    "sequence",
    "created_at",
    "actor",
    "action",
    "request",
    "model",
    "version",
    "details",
    "prev_hash",
    "hash",
]


# A spreadsheet opening the file runs a cell that starts with one of these as a formula, and
# model names come from MLflow, where anyone may register `=HYPERLINK(...)`. A leading ' makes
# the cell text; whoever checks the file against the hashes strips it from such cells first.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """`value` as a CSV cell that no spreadsheet reads as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(event: AuditEvent) -> list:
    """One event as a CSV row under `CSV_COLUMNS`; the hashes let the file be checked later."""
    return [
        csv_cell(cell)
        for cell in (
            event.sequence,
            event.created_at.astimezone(UTC).isoformat(),
            event.actor,
            event.action,
            event.request_id if event.request_id is not None else "",
            event.model_name,
            event.version if event.version is not None else "",
            json.dumps(event.details, sort_keys=True, ensure_ascii=False),
            event.prev_hash,
            event.hash,
        )
    ]


def csv_rows(events: Iterable[AuditEvent]) -> Iterator[list]:
    """The header, then a row per event: shared by `manage.py export_audit` and the audit page."""
    yield CSV_COLUMNS
    for event in events:
        yield csv_row(event)
