"""The audit trail: an append-only chain of events, each carrying the hash of the one before.

`record` appends under a lock on the chain head, so concurrent writers still form one chain and
sequence numbers have no gaps. `verify` recomputes every hash: an edited, deleted or inserted row
breaks the chain at the first sequence number it touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from registry import metrics

from .models import AuditEvent, AuditHead, TransitionRequest
from .signals import event_recorded

GENESIS = "0" * 64
VERIFY_BATCH = 2000


def canonical(
    *,
    sequence: int,
    created_at: datetime,
    actor: str,
    action: str,
    request_id: int | None,
    model_name: str,
    version: int | None,
    details: dict,
) -> str:
    """The event's content as one stable string: sorted keys, no whitespace, UTC timestamps."""
    return json.dumps(
        {
            "sequence": sequence,
            "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "request": request_id,
            "model": model_name,
            "version": version,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def actor_name(actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.get_username()


def record(
    action: str,
    *,
    actor=None,
    request: TransitionRequest | None = None,
    model_name: str = "",
    version: int | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Appends one event to the chain. `actor` is a user, or a word: "policy", "system"...

    Runs in the caller's transaction when there is one, so an event exists exactly when what it
    describes was committed.
    """
    if request is not None:
        model_name = model_name or request.version.model.name
        version = version if version is not None else request.version.version
    # JSON round trip: what is hashed is exactly what the database will give back. NaN and
    # infinities (metric values from MLflow) take the mirror's spelling: JSON columns refuse them.
    details = json.loads(
        json.dumps(metrics.encode_json(details or {}), default=str, allow_nan=False)
    )
    AuditHead.objects.get_or_create(name="audit")
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().get(name="audit")
        sequence = head.sequence + 1
        created_at = timezone.now()
        name = actor_name(actor)
        content = canonical(
            sequence=sequence,
            created_at=created_at,
            actor=name,
            action=action,
            request_id=request.pk if request is not None else None,
            model_name=model_name,
            version=version,
            details=details,
        )
        digest = chain_hash(head.hash, content)
        event = AuditEvent.objects.create(
            sequence=sequence,
            created_at=created_at,
            actor=name,
            action=action,
            request=request,
            model_name=model_name,
            version=version,
            details=details,
            prev_hash=head.hash,
            hash=digest,
        )
        head.sequence, head.hash = sequence, digest
        head.save(update_fields=["sequence", "hash"])
        event_recorded.send(sender=AuditEvent, event=event)
    return event


@dataclass
class Verification:
    ok: bool
    checked: int
    broken_at: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} events verified"
        return f"audit chain broken at sequence {self.broken_at}: {self.problem}"


def _events() -> Iterator[AuditEvent]:
    last = 0
    while True:
        batch = list(
            AuditEvent.objects.filter(sequence__gt=last).order_by("sequence")[:VERIFY_BATCH]
        )
        if not batch:
            return
        yield from batch
        last = batch[-1].sequence


def verify() -> Verification:
    """Recomputes the chain from the first event; names the first sequence that does not hold."""
    prev_hash, expected, checked = GENESIS, 1, 0
    for event in _events():
        if event.sequence != expected:
            return Verification(
                False, checked, expected, f"event {expected} is missing (next is {event.sequence})"
            )
        if event.prev_hash != prev_hash:
            return Verification(False, checked, event.sequence, "previous hash does not match")
        content = canonical(
            sequence=event.sequence,
            created_at=event.created_at,
            actor=event.actor,
            action=event.action,
            request_id=event.request_id,
            model_name=event.model_name,
            version=event.version,
            details=event.details,
        )
        if chain_hash(prev_hash, content) != event.hash:
            return Verification(False, checked, event.sequence, "content does not match its hash")
        prev_hash, expected, checked = event.hash, expected + 1, checked + 1
    head = AuditHead.objects.filter(name="audit").first()
    if head is not None and (head.sequence, head.hash) != (checked, prev_hash):
        return Verification(
            False,
            checked,
            checked + 1,
            f"the chain head says {head.sequence} events; events after {checked} were removed",
        )
    return Verification(True, checked)


# -- CSV export -------------------------------------------------------------------------------

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
