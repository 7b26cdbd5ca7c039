"""Sending outbox mail: each row claimed, checked it should still go, rendered once per event,
sent, and its result recorded; and the sweep that sends what no job did."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from ..models import Decision, Notification, OutboxState
from .outbox import SWEEP_BATCH, claim, due, finish, release_failed
from .recipients import ASKS_FOR_A_VOTE, Kind, current_voters, reminders_enabled
from .rendering import render

logger = logging.getLogger(__name__)


def send(ids: list[int]) -> tuple[int, int, int]:
    """Claims and sends these notifications one by one; returns (sent, skipped, failed)."""
    sent = skipped = failed = 0
    rendered: dict[int, dict[str, str]] = {}
    rows = Notification.objects.filter(pk__in=ids).select_related(
        "recipient", "event__request__version__model", "event__request__requester"
    )
    for item in rows:
        if not claim(Notification, item.pk):
            continue  # sent, or being sent, by someone else
        try:
            reason = skip_reason(item)
            if reason:
                finish(item, OutboxState.SKIPPED, reason)
                skipped += 1
                continue
            if item.event_id not in rendered:
                rendered[item.event_id] = render(item.event, item.kind)
            message = rendered[item.event_id]
            mail = EmailMultiAlternatives(
                subject=message["subject"],
                body=message["text"],
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[item.recipient.email],
                headers={"Auto-Submitted": "auto-generated"},
            )
            mail.attach_alternative(message["html"], "text/html")
            mail.send()
        except Exception as error:  # whatever failed (template, transport) is recorded, retried
            release_failed(item, f"{type(error).__name__}: {error}")
            failed += 1
        else:
            finish(item, OutboxState.SENT)
            sent += 1
    return sent, skipped, failed


def skip_reason(item: Notification) -> str:
    """Why this mail should not go after all (things changed since it was written), or ""."""
    user, request = item.recipient, item.event.request if item.event.request_id else None
    if not user.is_active or not user.email:
        return "the recipient has no active account with an address"
    if item.kind in ASKS_FOR_A_VOTE and request is not None:
        request.refresh_from_db(fields=["decision"])
        if request.decision != Decision.PENDING:
            return f"the request is already {request.decision}"
    if item.kind == Kind.REMINDER and request is not None:
        if current_voters(request).filter(user=user).exists():
            return "the recipient has voted since"
        if not reminders_enabled(user):
            return "the recipient turned reminders off"
    return ""


def sweep_outbox(*, now=None) -> int:
    """Sends pending mail nobody is sending (lost enqueue, dead worker, retries used up)."""
    ids = list(due(Notification, now=now).order_by("pk").values_list("pk", flat=True)[:SWEEP_BATCH])
    if not ids:
        return 0
    sent, skipped, failed = send(ids)
    logger.info("outbox sweep: %s sent, %s skipped, %s failed", sent, skipped, failed)
    return sent
