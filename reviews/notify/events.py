"""From an audit event to its mail: outbox rows written in the event's transaction, and the job
that sends them queued once the event commits."""

from __future__ import annotations

from django.db import transaction

from ..models import AuditEvent, Notification
from .outbox import enqueue, job_id
from .recipients import ABOUT_THE_REGISTRY, ACTION_KINDS, AUTHORED, Kind, recipients

# The job is queued by its dotted path, which Redis keeps: jobs queued by one release are run by
# the next, so the path stays where it has always been (`reviews/notify/__init__.py`).
SEND_EVENT_MAIL = "reviews.notify.send_event_mail"


def on_event_recorded(sender, event: AuditEvent, **kwargs) -> None:
    """Writes the event's mail to the outbox; queues sending it once the event commits."""
    if outbox_mail(event):
        transaction.on_commit(lambda: enqueue_mail(event))


def enqueue_mail(event: AuditEvent) -> bool:
    return enqueue(SEND_EVENT_MAIL, event.pk, job_id=job_id("mail", event), what="mail")


def outbox_mail(event: AuditEvent) -> int:
    """Writes a pending Notification for each recipient of `event`; returns how many it wrote."""
    kind = ACTION_KINDS.get(event.action)
    if kind is None:
        return 0
    request = event.request if event.request_id else None
    if request is None and kind not in ABOUT_THE_REGISTRY:
        return 0
    chosen = recipients(kind, request)
    if kind in AUTHORED:
        chosen = chosen.exclude(username=event.actor)
    users = list(chosen.values_list("pk", flat=True))
    if not users:
        return 0
    key = f"event-{event.pk}"
    if request is not None and kind in (Kind.REMINDER, Kind.ESCALATION):
        key = f"{kind}-{request.pk}"  # one reminder per request and round, whatever the event
    Notification.objects.bulk_create(
        [Notification(event=event, kind=kind, key=key, recipient_id=pk) for pk in users],
        ignore_conflicts=True,
    )
    return len(users)
