"""The audit trail's chain: an append-only chain of events, each carrying the hash of the one
before.

`record` appends under a lock on the chain head, so concurrent writers still form one chain and
sequence numbers have no gaps. The lock lasts until the transaction ends, so a transaction that
records early and goes on writing keeps every other writer waiting: inside `deferred_appends` the
events are appended together when the block ends, and the head is held for the append and the
commit only. Checking the chain is `reviews.audit.verification`; exporting it,
`reviews.audit.export`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from registry import metrics

from ..models import AuditEvent, AuditHead, TransitionRequest
from ..signals import event_recorded

GENESIS = "0" * 64


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


def event_content(event: AuditEvent) -> str:
    """`canonical` of a stored event, as its hash covers it."""
    return canonical(
        sequence=event.sequence,
        created_at=event.created_at,
        actor=event.actor,
        action=event.action,
        request_id=event.request_id,
        model_name=event.model_name,
        version=event.version,
        details=event.details,
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
    describes was committed. Inside `deferred_appends` the event is appended when the block ends:
    until then the returned event has no id, sequence or time.
    """
    if request is not None:
        model_name = model_name or request.version.model.name
        version = version if version is not None else request.version.version
    # JSON round trip: what is hashed is exactly what the database will give back. NaN and
    # infinities (metric values from MLflow) take the mirror's spelling: JSON columns refuse them.
    details = json.loads(
        json.dumps(metrics.encode_json(details or {}), default=str, allow_nan=False)
    )
    event = AuditEvent(
        actor=actor_name(actor),
        action=action,
        request=request,
        model_name=model_name,
        version=version,
        details=details,
    )
    deferred = getattr(_deferred, "events", None)
    if deferred is not None:
        # A savepoint rolled back drops the callbacks registered in it: the marker tells the
        # append whether this event's part of the transaction is still there.
        kept = _Kept()
        transaction.on_commit(kept)
        deferred.append((event, kept))
        return event
    # No savepoint of its own inside the caller's transaction: an append that fails fails the
    # caller's transaction anyway, and the two extra round trips would be spent holding the head.
    with transaction.atomic(savepoint=False):
        _append([event])
    return event


_deferred = threading.local()


class _Kept:
    """A callback that does nothing after commit: it marks a deferred event still to append."""

    def __call__(self) -> None:
        pass


@contextmanager
def deferred_appends() -> Iterator[None]:
    """Events recorded in the block are appended together when it ends, still in the caller's
    transaction: the chain head is locked for the append and the commit, not from the first
    event on. Used around the transactions that decide and carry out requests, which write much
    after their first event while other writers wait for the head.

    An event recorded in a savepoint that was rolled back is not appended; when the block raises,
    the transaction cannot commit and nothing is appended. A block inside another one appends
    with the outer block. What needs an event's id or sequence in the block must record outside.
    """
    with transaction.atomic(savepoint=False):
        if getattr(_deferred, "events", None) is not None:
            yield
            return
        deferred: list[tuple[AuditEvent, _Kept]] = []
        _deferred.events = deferred
        try:
            yield
        finally:
            _deferred.events = None
        if events := _kept(deferred):
            _append(events)


def _kept(deferred: list[tuple[AuditEvent, _Kept]]) -> list[AuditEvent]:
    """The deferred events whose markers are still to run after commit (Django keeps a list of
    (savepoints, callback, robust) and drops a rolled-back savepoint's entries from it); the
    markers are taken out of that list, so after the block it holds what it would without."""
    callbacks = connection.run_on_commit
    markers = {id(kept) for _, kept in deferred}
    alive = {id(entry[1]) for entry in callbacks if id(entry[1]) in markers}
    callbacks[:] = [entry for entry in callbacks if id(entry[1]) not in markers]
    return [event for event, kept in deferred if id(kept) in alive]


def _append(events: list[AuditEvent]) -> None:
    """Appends `events` in order under the head's lock, then tells `event_recorded` of each."""
    head = _locked_head()
    for event in events:
        event.sequence, event.created_at = head.sequence + 1, timezone.now()
        event.prev_hash = head.hash
        event.hash = chain_hash(head.hash, event_content(event))
        head.sequence, head.hash = event.sequence, event.hash
    AuditEvent.objects.bulk_create(events)
    head.save(update_fields=["sequence", "hash"])
    for event in events:
        event_recorded.send(sender=AuditEvent, event=event)


def _locked_head() -> AuditHead:
    """The chain's head, locked until the transaction ends (created with the first event)."""
    try:
        return AuditHead.objects.select_for_update().get(name="audit")
    except AuditHead.DoesNotExist:
        AuditHead.objects.get_or_create(name="audit")
        return AuditHead.objects.select_for_update().get(name="audit")
