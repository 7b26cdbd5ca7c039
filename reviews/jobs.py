"""Old path of the transition job and of the reconciler: kept for jobs queued before the move.

RQ stores a job's function as a dotted path and imports it when a worker runs the job. Jobs queued
by the release before reviews/execution/ existed (a retry waiting out its backoff, a job queued
while the workers were being replaced) name the old path, and must still run on the new workers.
This module only re-exports those entry points; it can go in the next release, once no job queued
before the move can still be waiting.

"reviews.jobs.reconcile" is older still: schedulers of the releases before reviews/reconciler.py
queued the reconciler under it.
"""

from .execution.jobs import execute_transition
from .execution.reconciler import reconcile

__all__ = ["execute_transition", "reconcile"]
