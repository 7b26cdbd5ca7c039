"""Transitions that wait for a worker nobody started.

An approved request says "transition queued" until a worker takes its job. If no worker consumes
the `transitions` queue (none runs, or one was started on other queues only), that would go on for
ever with nothing to tell anyone why. Once a job has waited QUORUM_TRANSITION_WAIT_WARNING seconds
and no live worker listens on its queue, the request's page, its status poll, the admin and
`manage.py check` say so and name the command that starts a worker.

A worker counts as live while its registration in Redis does: one that was killed still counts
until its registration expires (RQ's worker TTL, 7 minutes by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince
from rq.job import Job, JobStatus
from rq.worker import Worker

from infra import queues

from ..models import Decision, Execution, TransitionRequest
from .jobs import QUEUE, transition_job_id

START_WORKER = "python manage.py rqworker --with-scheduler"
HINT = f"Start a worker with `{START_WORKER}` (it serves all of Quorum's queues)."
# Requests looked at by the admin's and `check`'s summary: enough to report, bounded.
SUMMARY_LIMIT = 50


@dataclass(frozen=True)
class Stall:
    request_id: int
    queue: str
    waited: timedelta

    @property
    def waited_text(self) -> str:
        """How long, in words: "5 minutes", "1 hour, 3 minutes"."""
        now = timezone.now()
        return timesince(now - self.waited, now)

    @property
    def message(self) -> str:
        return (
            f"No worker is consuming the “{self.queue}” queue: this transition has waited "
            f"{self.waited_text} for one. {HINT}"
        )


def summary(found: list[Stall]) -> str:
    """One sentence about several stalled requests (the admin's list, `manage.py check`)."""
    ids = ", ".join(f"#{stall.request_id}" for stall in found)
    return (
        f"No worker is consuming the “{found[0].queue}” queue: approved requests {ids} wait for "
        f"their transition (the first for {found[0].waited_text})."
    )


def consumers(queue_name: str = QUEUE) -> int:
    """How many live workers listen on the queue."""
    return len(Worker.all(queue=queues.get_queue(queue_name)))


def request_stall(request: TransitionRequest) -> Stall | None:
    """Whether this request's job has waited past the threshold with no worker to take it."""
    if request.decision != Decision.APPROVED or request.execution != Execution.QUEUED:
        return None
    stalls = _stalls([request])
    return stalls[0] if stalls else None


def stalled_requests() -> list[Stall]:
    """The queued transitions (oldest first, at most SUMMARY_LIMIT) no worker is there to run."""
    waiting = list(
        TransitionRequest.objects.filter(
            decision=Decision.APPROVED, execution=Execution.QUEUED
        ).order_by("pk")[:SUMMARY_LIMIT]
    )
    return _stalls(waiting) if waiting else []


def _stalls(requests: list[TransitionRequest]) -> list[Stall]:
    threshold = timedelta(seconds=settings.QUORUM_TRANSITION_WAIT_WARNING)
    now = timezone.now()
    try:
        queue = queues.get_queue(QUEUE)
        jobs = Job.fetch_many([transition_job_id(r) for r in requests], connection=queue.connection)
        # (A job waiting for its retry is "scheduled", not queued: that wait is intended.)
        waits = [
            (request.pk, now - job.enqueued_at)
            for request, job in zip(requests, jobs, strict=True)
            if job is not None
            and job.enqueued_at is not None
            and job.get_status(refresh=False) == JobStatus.QUEUED
            and now - job.enqueued_at >= threshold
        ]
        if not waits or consumers(QUEUE):
            return []
    except (redis.RedisError, OSError):
        return []  # Redis is down: the reconciler and the pages say so in their own ways
    return [Stall(request_id=pk, queue=QUEUE, waited=waited) for pk, waited in waits]
