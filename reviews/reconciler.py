"""The reconciler's old dotted path, for reconcile jobs the cron scheduler of the previous release
queued before it moved to reviews/execution/ (RQ imports a job's function from the path it
stored). Re-exports that entry point only; goes in the next release, with
tests/execution/test_job_paths.py.
"""

from .execution.reconciler import reconcile

__all__ = ["reconcile"]
