"""How the registry sync is doing, from its `SyncRun` records: for the dashboard and for alerts.

`sync_status` is what the models page shows (when the mirror last synced, whether the latest sync
failed and why, what the latest successful one could not mirror), in one query. `failure_streak`
is the run of failed syncs since the last successful one, which the review app mails staff about
(`reviews.execution.sync_health`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Subquery

from .models import SyncRun


@dataclass(frozen=True)
class SyncStatus:
    latest: SyncRun | None  # the latest finished sync, successful or not
    last_success_at: datetime | None
    last_success: SyncRun | None  # the same row as `latest` when that one succeeded

    @property
    def failing(self) -> bool:
        return self.latest is not None and bool(self.latest.error)

    @property
    def never_synced(self) -> bool:
        return self.latest is None


def sync_status() -> SyncStatus:
    """The latest finished sync and when the mirror last synced successfully (one query)."""
    last_success = SyncRun.objects.succeeded().order_by("-finished_at", "-id")
    latest = (
        SyncRun.objects.finished()
        .order_by("-finished_at", "-id")
        .annotate(last_success_at=Subquery(last_success.values("finished_at")[:1]))
        .defer("skipped")
        .first()
    )
    if latest is None:
        return SyncStatus(latest=None, last_success_at=None, last_success=None)
    return SyncStatus(
        latest=latest,
        last_success_at=latest.last_success_at,
        last_success=None if latest.error else latest,
    )


@dataclass(frozen=True)
class FailureStreak:
    failures: int  # failed syncs since the last successful one
    first_failed_at: datetime | None
    last_error: str
    last_success_at: datetime | None


def failure_streak() -> FailureStreak:
    """The failed syncs that finished after the last successful one."""
    last_success_at = (
        SyncRun.objects.succeeded()
        .order_by("-finished_at", "-id")
        .values_list("finished_at", flat=True)
        .first()
    )
    failed = SyncRun.objects.failed()
    if last_success_at is not None:
        failed = failed.filter(finished_at__gt=last_success_at)
    count = failed.count()
    first = failed.order_by("finished_at", "id").values_list("started_at", flat=True).first()
    last_error = failed.order_by("-finished_at", "-id").values_list("error", flat=True).first()
    return FailureStreak(
        failures=count,
        first_failed_at=first,
        last_error=last_error or "",
        last_success_at=last_success_at,
    )
