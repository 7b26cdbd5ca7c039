"""Old dotted path of the job that retries an approval proof (now in reviews/execution/), for its
retries queued by the previous release: RQ imports a job's function from the path it stored.
Re-exports that entry point only; goes in the next release, with tests/execution/test_job_paths.py.
"""

from .execution.attestation import write_job

__all__ = ["write_job"]
