"""The hand-off from a decision to its execution: queueing the transition job of an approved
request, and how such jobs are retried.

Decisions never import execution (a contract in pyproject.toml): an approved request is handed
over through the queue, by the job's stable dotted path (`TRANSITION_JOB`, the path RQ stores
with every job anyway, pinned by `tests/execution/test_job_paths.py`). Execution imports this
module to queue a transition again (the reconciler, a ratification's revert) and for the retry
policy of its other jobs, so the job id, the queue and the retries are written once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from rq import Retry

from infra import queues

from ..models import GuardProbe, TransitionRequest

QUEUE = "transitions"
# `reviews.execution.jobs.execute_transition`, named rather than imported (see above).
TRANSITION_JOB = "reviews.execution.jobs.execute_transition"


def retry_policy() -> Retry | None:
    """How a failed transition (and its follow-up sync, and its proof) is retried: after each
    interval of QUORUM_TRANSITION_RETRY_INTERVALS, then after its last interval again until the
    waits add up to QUORUM_TRANSITION_RETRY_WINDOW.

    An outage shorter than the window ends `done` without anyone's help; only a longer one ends
    `failed`, with mail asking an admin to retry.
    """
    intervals = list(settings.QUORUM_TRANSITION_RETRY_INTERVALS)
    if intervals and intervals[-1] > 0:
        while sum(intervals) < settings.QUORUM_TRANSITION_RETRY_WINDOW:
            intervals.append(intervals[-1])
    return Retry(max=len(intervals), interval=intervals) if intervals else None


def transition_job_id(request: TransitionRequest) -> str:
    """The one job id a request's transition ever has (`infra.queues.job_id_for`)."""
    return queues.job_id_for("transition", request)


def enqueue_transition(request_id: int, *, replace: bool = False) -> bool:
    """Queues the transition job once; True if this call queued it.

    Never raises for Redis trouble: the request is already approved in the database and the
    reconciler will queue it when Redis answers again. `replace` drops a finished or failed job
    record first (an admin's retry).
    """
    request = TransitionRequest.objects.filter(pk=request_id).only("pk", "created_at").first()
    if request is None:
        return False
    return queues.enqueue_once(
        QUEUE,
        TRANSITION_JOB,
        request_id,
        job_id=transition_job_id(request),
        what=f"request #{request_id}",
        replace=replace,
        retry=retry_policy(),
        job_timeout=settings.QUORUM_TRANSITION_TIMEOUT,
        description=f"transition for request #{request_id}",
    )


def guard_refresh_soon() -> None:
    """Once the current transaction commits, bring the guard's tags in step through a sync (which
    ends in `reviews.execution.guard.on_sync_finished`) instead of waiting for the periodic one:
    after a policy changed, or a request opened or closed (the version's `quorum.pinned`). Only
    on a registry known to be guarded; elsewhere the tags do nothing."""
    probe = GuardProbe.objects.filter(pk=1).first()
    if probe is None or not (probe.guarded and probe.service_identity):
        return
    transaction.on_commit(_enqueue_guard_refresh)


def _enqueue_guard_refresh() -> None:
    from registry.jobs import SYNC_QUEUE, sync_incremental

    # One id for every change of one transaction or load: a refresh already waiting covers them
    # all. A refresh that has finished does not: its record is replaced, so the next one runs.
    queues.enqueue_once(
        SYNC_QUEUE,
        sync_incremental,
        job_id="guard-refresh",
        what="the guard tag refresh",
        replace=True,
        retried_by="the periodic sync",
        description="guard tags",
    )
