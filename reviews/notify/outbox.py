"""The outbox that mail and outgoing webhooks share: claims, results, backoff, enqueueing.

Items (`reviews.models.OutboxItem` rows) are written in the transaction of the audit event they
are about. A sender claims one with a conditional UPDATE of `claimed_until` before sending, so two
workers never both send it, and records the result, so a retried job skips what went out. A failed
attempt sets `next_attempt_at` with exponential backoff; after MAX_ATTEMPTS the item is given up
and logged. `due` is what the periodic sweep sends: pending, past its backoff, nobody's claim, and
older than a minute (until then the job queued for it is expected to send it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from rq import Retry

from infra import queues

from ..audit import chain
from ..models import AuditEvent, OutboxItem, OutboxState

logger = logging.getLogger(__name__)

QUEUE = "notifications"
# A claim outlives any send: EMAIL_TIMEOUT and the webhook timeout are far shorter.
CLAIM_SECONDS = 600
MAX_ATTEMPTS = 12
MAX_BACKOFF_SECONDS = 3600
SWEEP_BATCH = 500
# The sweep leaves fresh rows to the job queued for them.
SWEEP_GRACE_SECONDS = 60


class DeliveryFailed(Exception):
    """Some items of a job could not be sent; raised so that RQ retries the job."""


# The helpers below take the concrete kind of item (`Notification`, `WebhookDelivery`) and reach
# its rows through `_default_manager`: the abstract `OutboxItem` declares no `objects` itself.
def claim(model: type[OutboxItem], pk: int, *, now=None) -> bool:
    """Takes `pk` for sending if it is pending and nobody holds it; True if this caller has it."""
    now = now or timezone.now()
    return bool(
        model._default_manager.filter(pk=pk, state=OutboxState.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )


def finish(item: OutboxItem, state: str, note: str = "", **fields: Any) -> None:
    type(item)._default_manager.filter(pk=item.pk).update(
        state=state,
        finished_at=timezone.now(),
        claimed_until=None,
        attempts=F("attempts") + 1 if state == OutboxState.SENT else F("attempts"),
        last_error=note,
        **fields,
    )


def release_failed(item: OutboxItem, error: str, **fields: Any) -> None:
    """Records a failed attempt; after MAX_ATTEMPTS the item is given up (and logged)."""
    # `item` may have been loaded before another sender's attempt; the caller holds the claim
    # now, so the stored count is current.
    item.refresh_from_db(fields=["attempts"])
    attempts = item.attempts + 1
    gave_up = attempts >= MAX_ATTEMPTS
    type(item)._default_manager.filter(pk=item.pk).update(
        attempts=attempts,
        last_error=error[:2000],
        claimed_until=None,
        next_attempt_at=timezone.now() + backoff(attempts),
        state=OutboxState.FAILED if gave_up else OutboxState.PENDING,
        finished_at=timezone.now() if gave_up else None,
        **fields,
    )
    log = logger.error if gave_up else logger.warning
    log(
        "%s #%s attempt %s failed%s: %s",
        type(item).__name__,
        item.pk,
        attempts,
        " (giving up)" if gave_up else "",
        error,
    )


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))


def due(model: type[OutboxItem], *, now=None) -> QuerySet:
    """Pending items the sweep should send now: past their backoff and nobody's claim."""
    now = now or timezone.now()
    return model._default_manager.filter(
        state=OutboxState.PENDING,
        next_attempt_at__lte=now,
        created_at__lte=now - timedelta(seconds=SWEEP_GRACE_SECONDS),
    ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))


def send_again(model: type[OutboxItem], ids: list[int], *, actor) -> list[int]:
    """Puts given-up items back in line, due now with a fresh set of attempts; audited.

    Only items in the FAILED state move; the periodic sweep sends them (within a minute with the
    default QUORUM_NOTIFY_CRON). Returns the ids that moved.
    """
    with transaction.atomic():
        moved = sorted(
            model._default_manager.select_for_update()
            .filter(pk__in=ids, state=OutboxState.FAILED)
            .values_list("pk", flat=True)
        )
        if not moved:
            return []
        model._default_manager.filter(pk__in=moved).update(
            state=OutboxState.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            claimed_until=None,
            finished_at=None,
        )
        chain.record(
            "outbox.send_again",
            actor=actor,
            details={"outbox": model._meta.verbose_name_plural, "ids": moved},
        )
    return moved


def enqueue(func, event_id: int, *, job_id: str, what: str) -> bool:
    """Queues `func(event_id)` on the notifications queue; True if queued. `func` is the job's
    function or its dotted path (RQ stores the path either way).

    Never raises for Redis trouble: the outbox rows are committed and the sweep sends them.
    """
    intervals = settings.QUORUM_NOTIFY_RETRY_INTERVALS
    return queues.enqueue_once(
        QUEUE,
        func,
        event_id,
        job_id=job_id,
        what=f"{what} for event #{event_id}",
        retried_by="the sweep",
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        description=f"{what} for audit event #{event_id}",
    )


def job_id(prefix: str, event: AuditEvent) -> str:
    """Unique to the event even across databases that share a Redis: ids restart, hashes don't."""
    return f"{prefix}-event-{event.pk}-{event.hash[:16]}"


def send_for_event(
    model: type[OutboxItem], event_id: int, send: Callable[[list[int]], tuple[int, int, int]]
) -> str:
    """What an event's job does: `send` its pending items; raise if some failed, so RQ retries."""
    ids = list(
        model._default_manager.filter(event_id=event_id, state=OutboxState.PENDING).values_list(
            "pk", flat=True
        )
    )
    done, skipped, failed = send(ids)
    summary = f"event #{event_id}: {done} sent, {skipped} skipped, {failed} failed"
    if failed:
        raise DeliveryFailed(summary)
    return summary
