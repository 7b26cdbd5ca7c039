"""/metrics: Quorum's domain metrics in Prometheus' text format, read at scrape time.

A custom collector reads the database (operations.readings) and Redis (operations.queue_state)
when Prometheus asks, instead of counting events in process memory: with several gunicorn
processes each would count only what it served, while the database and Redis are what they all
share, so every process answers with the same numbers. docs/operations.md lists the metrics and
the alerts built on them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from infra import page_cache

from . import readings
from .queue_state import queue_states

logger = logging.getLogger(__name__)


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels, unit="seconds")


def _buckets(histogram: readings.Histogram) -> list[tuple[str, float]]:
    return [(str(bound), float(count)) for bound, count in histogram.buckets] + [
        ("+Inf", histogram.count)
    ]


class QuorumCollector(Collector):
    """Yields every metric family of docs/operations.md from one reading of the database and
    one of Redis."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        found = readings.read()
        yield from self._requests(found)
        yield from self._sync(found, now)
        yield from self._queues(now)

    def _requests(self, found: readings.Readings) -> Iterator[Metric]:
        open_requests = GaugeMetricFamily(
            "quorum_open_requests",
            "Requests still holding their version and target: pending, or approved and not done "
            "(state: pending, approved, queued, running, failed).",
            labels=["policy", "target", "state"],
        )
        for policy, target, state, count in found.open_requests:
            open_requests.add_metric([policy, target, state], count)
        yield open_requests

        decided = CounterMetricFamily(
            "quorum_requests_decided",
            "Requests decided, by kind and decision.",
            labels=["kind", "decision"],
        )
        for kind, decision, count in found.decided:
            decided.add_metric([kind, decision], count)
        yield decided

        to_decision = _histogram(
            "quorum_request_decision",
            "Time from a request's creation to its decision.",
            ["decision"],
        )
        for decision, histogram in sorted(found.decision_seconds.items()):
            to_decision.add_metric(
                [decision], _buckets(histogram), sum_value=histogram.total_seconds
            )
        yield to_decision

        to_done = _histogram(
            "quorum_request_execution",
            "Time from an approval to its transition done in MLflow.",
            [],
        )
        execution = found.execution_seconds
        to_done.add_metric([], _buckets(execution), sum_value=execution.total_seconds)
        yield to_done

        yield CounterMetricFamily(
            "quorum_transitions_done",
            "Approved transitions carried out in MLflow.",
            value=found.transitions_done,
        )
        yield GaugeMetricFamily(
            "quorum_transitions_failed",
            "Approved transitions that failed after their retries and wait for an admin's retry.",
            value=found.transitions_failed,
        )
        yield GaugeMetricFamily(
            "quorum_proofs_failed",
            "Promoted versions whose signed approval proof could not be written "
            "(manage.py write_attestation ID).",
            value=found.proofs_failed,
        )
        yield CounterMetricFamily(
            "quorum_break_glass_uses",
            "Break-glass moves made.",
            value=found.break_glass_uses,
        )
        yield GaugeMetricFamily(
            "quorum_requests_past_reminder",
            "Pending requests within QUORUM_REMINDER_BEFORE of their expiry, or past it.",
            value=found.past_reminder,
        )
        yield GaugeMetricFamily(
            "quorum_lockouts",
            "Usernames (or addresses, for unknown API tokens) locked out of signing in now.",
            value=found.lockouts,
        )

    def _sync(self, found: readings.Readings, now) -> Iterator[Metric]:
        if found.last_sync_success is not None:
            yield GaugeMetricFamily(
                "quorum_sync_last_success_timestamp_seconds",
                "When the last successful registry sync finished (Unix time).",
                value=found.last_sync_success.timestamp(),
            )
            yield GaugeMetricFamily(
                "quorum_sync_lag_seconds",
                "Seconds since the last successful registry sync finished.",
                value=max(0.0, (now - found.last_sync_success).total_seconds()),
            )
        if found.last_sync_finished is not None:
            yield GaugeMetricFamily(
                "quorum_sync_last_finished_timestamp_seconds",
                "When the last registry sync, successful or not, finished (Unix time).",
                value=found.last_sync_finished.timestamp(),
            )
        yield GaugeMetricFamily(
            "quorum_sync_failures_in_a_row",
            "Registry syncs that failed since the last successful one.",
            value=found.sync_failures,
        )
        yield CounterMetricFamily(
            "quorum_out_of_band_moves",
            "Moves made in MLflow directly, outside Quorum, that a sync observed.",
            value=found.out_of_band_moves,
        )
        reverts = GaugeMetricFamily(
            "quorum_out_of_band_reverts",
            "Reverts of out-of-band moves, by state (queued, running, done, skipped, failed).",
            labels=["state"],
        )
        for state, count in sorted(found.reverts.items()):
            reverts.add_metric([state], count)
        yield reverts

    def _queues(self, now) -> Iterator[Metric]:
        up = GaugeMetricFamily("quorum_redis_up", "1 when Redis answered this scrape, else 0.")
        try:
            states = queue_states(now)
        except (redis.RedisError, OSError) as error:
            logger.warning("metrics: Redis did not answer (%s)", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._page_cache()
        families = {
            "depth": GaugeMetricFamily(
                "quorum_queue_jobs", "Jobs waiting in the queue.", labels=["queue"]
            ),
            "oldest_age": GaugeMetricFamily(
                "quorum_queue_oldest_job_age_seconds",
                "Seconds the first job waiting in the queue has waited (0 when none waits).",
                labels=["queue"],
            ),
            "failed": GaugeMetricFamily(
                "quorum_queue_failed_jobs",
                "Jobs in the queue's failed job registry.",
                labels=["queue"],
            ),
            "workers": GaugeMetricFamily(
                "quorum_queue_workers",
                "Live workers (heartbeat within QUORUM_WORKER_HEARTBEAT_WINDOW) on the queue.",
                labels=["queue"],
            ),
        }
        for state in states:
            for attribute, family in families.items():
                family.add_metric([state.name], getattr(state, attribute) or 0)
        yield from families.values()

    def _page_cache(self) -> Iterator[Metric]:
        try:
            counts = page_cache.counts()
        except (redis.RedisError, OSError) as error:
            logger.warning("metrics: Redis did not answer for the page cache (%s)", error)
            return
        answers = CounterMetricFamily(
            "quorum_page_cache_answers",
            "Answers of the kept pages (inbox, request, models, model, version, comparison) since "
            "Redis started: kept (served from the cache), made (no page kept since the last "
            "change), waited (served the page another answer was making).",
            labels=["result"],
        )
        for result in ("kept", "made", "waited"):
            answers.add_metric([result], getattr(counts, result))
        yield answers
        yield CounterMetricFamily(
            "quorum_page_cache_invalidations",
            "Committed database write transactions since Redis started, each of which ended "
            "every page kept.",
            value=counts.generation,
        )


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(QuorumCollector())


def exposition() -> bytes:
    """The scrape's body."""
    return generate_latest(REGISTRY)
