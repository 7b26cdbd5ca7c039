"""What /metrics reports about the review engine and the mirror, read from the database at
scrape time with a fixed number of queries, none of them over the audit log.

Every number comes from the rows the engine keeps anyway (requests with their timestamps, sync
runs, out-of-band changes and reverts, django-axes' attempts), so every web process reports the
same values whichever of them Prometheus reaches, and a restart loses nothing. Counters are
counts of rows in a state no row leaves (decided, done, observed out of band); the rest are gauges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.utils import timezone

from registry.models import TRANSITION_KINDS, ChangeOrigin, RegistryChange, SyncRun
from reviews.models import (
    Attestation,
    Decision,
    Execution,
    OutOfBandRevert,
    RequestKind,
    TransitionRequest,
)

# Upper bounds of the histogram buckets, in seconds. People decide in minutes to days (a request
# expires after its policy's lifetime, 7 days by default); workers carry a decision out in
# seconds, or minutes while MLflow is down and the job retries.
DECISION_BUCKETS = (60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400)
EXECUTION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600)


@dataclass
class Histogram:
    """Cumulative bucket counts (as Prometheus wants them), the count and the sum in seconds."""

    buckets: list[tuple[float, int]]
    count: int
    total_seconds: float


@dataclass
class Readings:
    open_requests: list[tuple[str, str, str, int]]  # policy, target, state, count
    decided: list[tuple[str, str, int]]  # kind, decision, count
    decision_seconds: dict[str, Histogram]  # by decision
    execution_seconds: Histogram
    transitions_done: int
    transitions_failed: int
    proofs_failed: int
    break_glass_uses: int
    past_reminder: int
    last_sync_success: datetime | None
    last_sync_finished: datetime | None
    sync_failures: int
    out_of_band_moves: int
    reverts: dict[str, int] = field(default_factory=dict)
    lockouts: int = 0


def open_state(decision: str, execution: str) -> str:
    """How an open request is labelled: pending, or where the approved one's transition is."""
    if decision == Decision.PENDING:
        return "pending"
    return execution or "approved"


def _histogram(row: Mapping[str, Any], bounds: tuple[int, ...]) -> Histogram:
    total = row["total"]
    seconds = total.total_seconds() if isinstance(total, timedelta) else float(total or 0) / 1e6
    return Histogram(
        buckets=[(float(b), row[f"le_{b}"]) for b in bounds],
        count=row["count"],
        total_seconds=seconds,
    )


def _bucket_counts(start: str, end: str, bounds: tuple[int, ...]) -> dict:
    """One conditional count per bucket: rows whose end came within `bound` of their start."""
    aggregates: dict = {
        f"le_{b}": Count("pk", filter=Q(**{f"{end}__lte": F(start) + timedelta(seconds=b)}))
        for b in bounds
    }
    aggregates["count"] = Count("pk")
    aggregates["total"] = Sum(ExpressionWrapper(F(end) - F(start), output_field=DurationField()))
    return aggregates


def read() -> Readings:
    """Reads every domain metric: nine queries, whatever the size of the database."""
    now = timezone.now()
    requests = TransitionRequest.objects.order_by()

    open_rows = (
        requests.open()
        .values("policy__name", "target", "decision", "execution")
        .annotate(n=Count("pk"))
    )
    open_counts: dict[tuple[str, str, str], int] = {}
    for row in open_rows:
        key = (
            row["policy__name"] or "",
            row["target"],
            open_state(row["decision"], row["execution"]),
        )
        open_counts[key] = open_counts.get(key, 0) + row["n"]

    # One pass over the requests for every count kept on them.
    per_kind = requests.values("kind", "decision").annotate(
        n=Count("pk"),
        done=Count("pk", filter=Q(execution=Execution.DONE)),
        failed=Count("pk", filter=Q(execution=Execution.FAILED)),
        proofs_failed=Count("pk", filter=Q(attestation=Attestation.FAILED)),
        past_reminder=Count(
            "pk",
            filter=Q(
                decision=Decision.PENDING,
                expires_at__lte=now + timedelta(seconds=settings.QUORUM_REMINDER_BEFORE),
            ),
        ),
    )
    decided, done, failed, proofs_failed, break_glass, past_reminder = [], 0, 0, 0, 0, 0
    for row in per_kind:
        if row["decision"] != Decision.PENDING:
            decided.append((row["kind"], row["decision"], row["n"]))
        done += row["done"]
        failed += row["failed"]
        proofs_failed += row["proofs_failed"]
        past_reminder += row["past_reminder"]
        if row["kind"] == RequestKind.BREAK_GLASS:
            break_glass += row["n"]

    decision_rows = (
        requests.filter(decided_at__isnull=False)
        .values("decision")
        .annotate(**_bucket_counts("created_at", "decided_at", DECISION_BUCKETS))
    )
    execution_row = requests.filter(
        execution=Execution.DONE, executed_at__isnull=False, decided_at__isnull=False
    ).aggregate(**_bucket_counts("decided_at", "executed_at", EXECUTION_BUCKETS))

    sync = SyncRun.objects.finished().aggregate(
        last_finished=Max("finished_at"),
        last_success=Max("finished_at", filter=Q(error="")),
    )
    sync_failures = (
        SyncRun.objects.failed().filter(finished_at__gt=sync["last_success"]).count()
        if sync["last_success"] is not None
        else SyncRun.objects.failed().count()
    )
    out_of_band = RegistryChange.objects.filter(
        kind__in=TRANSITION_KINDS, origin=ChangeOrigin.OUT_OF_BAND
    ).count()
    reverts = dict(OutOfBandRevert.objects.order_by().values_list("state").annotate(n=Count("pk")))
    lockouts = AccessAttempt.objects.filter(
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT,
        attempt_time__gte=now - settings.AXES_COOLOFF_TIME,
    ).count()

    return Readings(
        open_requests=[(p, t, s, n) for (p, t, s), n in sorted(open_counts.items())],
        decided=sorted(decided),
        decision_seconds={
            row["decision"]: _histogram(row, DECISION_BUCKETS) for row in decision_rows
        },
        execution_seconds=_histogram(execution_row, EXECUTION_BUCKETS),
        transitions_done=done,
        transitions_failed=failed,
        proofs_failed=proofs_failed,
        break_glass_uses=break_glass,
        past_reminder=past_reminder,
        last_sync_success=sync["last_success"],
        last_sync_finished=sync["last_finished"],
        sync_failures=sync_failures,
        out_of_band_moves=out_of_band,
        reverts=reverts,
        lockouts=lockouts,
    )
