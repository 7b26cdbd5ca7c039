"""Old path of the job that undoes out-of-band moves: kept for jobs queued before the move.

RQ stores a job's function as a dotted path and imports it when a worker runs the job. Jobs queued
by the release before reviews/execution/ existed (a retry waiting out its backoff, a job queued
while the workers were being replaced) name the old path, and must still run on the new workers.
This module only re-exports those entry points; it can go in the next release, once no job queued
before the move can still be waiting.
"""

from .execution.reverts import revert_out_of_band

__all__ = ["revert_out_of_band"]
