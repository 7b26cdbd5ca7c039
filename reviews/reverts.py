"""Old dotted path of the job that undoes out-of-band moves (now in reviews/execution/), for jobs
the previous release queued or is retrying: RQ imports a job's function from the path it stored.
Re-exports that entry point only; goes in the next release, with tests/execution/test_job_paths.py.
"""

from .execution.reverts import revert_out_of_band

__all__ = ["revert_out_of_band"]
