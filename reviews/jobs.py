"""The transition job's and the reconciler's old dotted paths, for jobs queued before they moved
to reviews/execution/: RQ imports a job's function from the path it stored. The reconciler was
queued as "reviews.jobs.reconcile" before reviews/reconciler.py too. Re-exports those entry points
only; goes in the next release, with tests/execution/test_job_paths.py.
"""

from .execution.jobs import execute_transition
from .execution.reconciler import reconcile

__all__ = ["execute_transition", "reconcile"]
