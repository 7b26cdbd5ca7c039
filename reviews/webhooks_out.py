"""Old path of the job that posts outgoing webhooks: kept for jobs queued before the move.

RQ stores a job's function as a dotted path and imports it when a worker runs the job. Jobs queued
by the release before reviews/notify/ held the outgoing webhooks (a delivery waiting out its
backoff, a job queued while the workers were being replaced) name the old path, and must still
run on the new workers. This module only re-exports that entry point; it can go in the next
release, once no job queued before the move can still be waiting.
"""

from .notify.webhooks_out import deliver_event

__all__ = ["deliver_event"]
