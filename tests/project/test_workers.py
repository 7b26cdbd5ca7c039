"""The worker class every `rqworker` runs: transitions in the worker's own process, every other
job in a forked work horse. A real `manage.py rqworker --burst` process runs the jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from registry.jobs import SYNC_QUEUE
from reviews.execution.jobs import QUEUE as TRANSITIONS
from tests.processes import database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_transitions_run_in_the_worker_process_and_other_jobs_in_a_work_horse(rq_queue):
    # The burst worker serves every queue: whatever an earlier test left queued (mail, evidence
    # reads of an MLflow long gone) would run first, each job waiting out its own timeouts.
    for name in settings.QUORUM_QUEUES:
        rq_queue(name)
    in_transitions = rq_queue(TRANSITIONS).enqueue(os.getpid)
    in_syncs = rq_queue(SYNC_QUEUE).enqueue(os.getpid)

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "--burst"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log, _ = worker.communicate(timeout=120)

    assert worker.returncode == 0, log
    assert in_transitions.return_value() == worker.pid, log
    assert in_syncs.return_value() not in (None, worker.pid), log
