"""How execution's jobs are retried: the transition job, the sync that follows it, and the job
that retries an approval proof all wait out the same backoff.

Its own module because both the transition jobs (`reviews.execution.jobs`) and the proofs
(`reviews.execution.attestation`) use it, and the jobs import the proofs.
"""

from __future__ import annotations

from django.conf import settings
from rq import Retry


def retry_policy() -> Retry | None:
    """How a failed transition (and its follow-up sync) is retried: after each interval of
    QUORUM_TRANSITION_RETRY_INTERVALS, then after its last interval again until the waits add up
    to QUORUM_TRANSITION_RETRY_WINDOW.

    An outage shorter than the window ends `done` without anyone's help; only a longer one ends
    `failed`, with mail asking an admin to retry.
    """
    intervals = list(settings.QUORUM_TRANSITION_RETRY_INTERVALS)
    if intervals and intervals[-1] > 0:
        while sum(intervals) < settings.QUORUM_TRANSITION_RETRY_WINDOW:
            intervals.append(intervals[-1])
    return Retry(max=len(intervals), interval=intervals) if intervals else None
