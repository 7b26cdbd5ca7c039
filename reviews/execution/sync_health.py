"""Staff hear when the registry sync keeps failing.

While syncs fail the mirror freezes: stage changes made in MLflow go unseen and out-of-band moves
go unreported. After `QUORUM_SYNC_FAILURE_MAIL_AFTER` failed syncs in a row (0 turns this off),
a `registry.sync_failing` audit event is recorded once per failure streak, and its mail goes to
staff through the notification outbox like every other mail (`reviews.notify`). A successful sync
ends the streak; the next streak that reaches the threshold is reported again.

The registry app tells this module about every sync through its `sync_finished` signal, so the
registry never imports the review app.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from registry.models import SyncRun
from registry.sync_status import failure_streak

from ..audit import chain
from ..models import AuditEvent, AuditHead

logger = logging.getLogger(__name__)

ACTION = "registry.sync_failing"


def on_sync_finished(sender, sync_run: SyncRun, **kwargs) -> None:
    if sync_run.error:
        sync_failing_record()


def sync_failing_record() -> AuditEvent | None:
    """Records `registry.sync_failing` if the syncs since the last successful one have all failed
    and reached the threshold, and nobody recorded it for this streak yet; returns the event."""
    threshold = settings.QUORUM_SYNC_FAILURE_MAIL_AFTER
    if threshold <= 0:
        return None
    AuditHead.objects.get_or_create(name="audit")
    with transaction.atomic():
        # The chain head's lock, which every append takes anyway: two syncs failing at once
        # record the streak once.
        AuditHead.objects.select_for_update().get(name="audit")
        streak = failure_streak()
        if streak.failures < threshold:
            return None
        reported = AuditEvent.objects.filter(action=ACTION)
        if streak.last_success_at is not None:
            reported = reported.filter(created_at__gt=streak.last_success_at)
        if reported.exists():
            return None
        logger.error(
            "registry sync failed %d times in a row: %s", streak.failures, streak.last_error
        )
        return chain.record(
            ACTION,
            actor="system",
            details={
                "failures": streak.failures,
                "since": streak.first_failed_at,
                "last_success": streak.last_success_at,
                "error": streak.last_error,
            },
        )
