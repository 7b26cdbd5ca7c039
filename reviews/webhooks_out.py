"""Old dotted path of the job that posts outgoing webhooks (now reviews/notify/webhooks_out.py),
for deliveries the previous release queued or is retrying: RQ imports a job's function from the
path it stored. Re-exports that entry point only; goes in the next release, with
tests/execution/test_job_paths.py.
"""

from .notify.webhooks_out import deliver_event

__all__ = ["deliver_event"]
