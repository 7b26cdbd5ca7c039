"""Reminders and escalations: the audit events the periodic job records for pending requests,
each once per request. Their mail follows the event like any other (`reviews.notify.events`)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from ..audit import chain
from ..models import AuditEvent, Decision, TransitionRequest, Vote


def remind_and_escalate(*, now=None) -> dict[str, list[int]]:
    """Records a reminder for pending requests about to expire, and an escalation for those at
    half their lifetime with no vote; each once per request. Their mail follows the event."""
    now = now or timezone.now()
    before = timedelta(seconds=settings.QUORUM_REMINDER_BEFORE)
    pending = TransitionRequest.objects.filter(decision=Decision.PENDING, expires_at__gt=now)
    reminded = Exists(AuditEvent.objects.filter(request=OuterRef("pk"), action="notify.reminder"))
    escalated = Exists(
        AuditEvent.objects.filter(request=OuterRef("pk"), action="notify.escalation")
    )
    to_remind = list(
        pending.filter(expires_at__lte=now + before)
        # A request whose whole life is shorter than the reminder window has just been announced.
        .filter(created_at__lt=F("expires_at") - before)
        .exclude(reminded)
        .values_list("pk", flat=True)
    )
    voted = Exists(Vote.objects.filter(request=OuterRef("pk"), stale=False))
    unvoted = pending.exclude(escalated).exclude(voted)
    to_escalate = [
        pk
        for pk, created, expires in unvoted.values_list("pk", "created_at", "expires_at")
        if created + (expires - created) / 2 <= now
    ]
    return {
        "reminded": [pk for pk in to_remind if _record_once(pk, "notify.reminder", now)],
        "escalated": [pk for pk in to_escalate if _record_once(pk, "notify.escalation", now)],
    }


def _record_once(request_id: int, action: str, now) -> bool:
    with transaction.atomic():
        try:
            request = TransitionRequest.objects.locked(request_id)
        except TransitionRequest.DoesNotExist:  # deleted since it was listed: nobody to remind
            return False
        recorded = request.audit_events.filter(action=action).exists()
        if request.decision != Decision.PENDING or recorded:
            return False
        chain.record(
            action,
            actor="system",
            request=request,
            details={
                "expires_at": request.expires_at,
                "seconds_left": int((request.expires_at - now).total_seconds()),
            },
        )
    return True
