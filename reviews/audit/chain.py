"""The audit trail's chain: an append-only chain of events, each carrying the hash of the one
before.

`record` appends under a lock on the chain head, so concurrent writers still form one chain and
sequence numbers have no gaps. Checking the chain is `reviews.audit.verification`; exporting it,
`reviews.audit.export`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from django.db import transaction
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
    # No savepoint of its own inside the caller's transaction: an append that fails fails the
    # caller's transaction anyway, and the two extra round trips would be spent holding the head.
    with transaction.atomic(savepoint=False):
        head = _locked_head()
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


def _locked_head() -> AuditHead:
    """The chain's head, locked until the transaction ends (created with the first event)."""
    try:
        return AuditHead.objects.select_for_update().get(name="audit")
    except AuditHead.DoesNotExist:
        AuditHead.objects.get_or_create(name="audit")
        return AuditHead.objects.select_for_update().get(name="audit")
