"""The RQ worker class every `manage.py rqworker` runs (settings.RQ["WORKER_CLASS"]).

RQ's worker forks a work horse for each job: a crashing or leaking job cannot take the worker
down, and a job that overruns is killed. That isolation costs a fork of a process holding Django
and MLflow, a new database connection and a new HTTP connection to MLflow for every job, which
is most of a transition's cost (docs/benchmarks.md, burst). So transitions, which are short and
bounded (MLflow timeouts, QUORUM_TRANSITION_TIMEOUT), run in the worker process itself and reuse
its connections; syncs, mail and the reconciler still get a horse each.

Crash recovery does not depend on the horse: a worker killed in the middle of a transition leaves
a started job whose heartbeat stops and whose execution lock PostgreSQL releases with the
worker's connection, and the reconciler re-queues it (reviews/execution/reconciler.py). While an
in-process job runs, a thread keeps the worker's and the job's heartbeats going, as the forking
worker's main loop does while it waits for a horse.
"""

from __future__ import annotations

import threading

from django.db import close_old_connections, connections
from rq.worker import Worker, WorkerStatus

from operations.logs import job_context
from registry.mlflow_client import load_mlflow

# Queues whose jobs run in the worker process, without a work horse.
IN_PROCESS_QUEUES = frozenset({"transitions"})


class QuorumWorker(Worker):
    """RQ's forking worker, except for the jobs of IN_PROCESS_QUEUES, which it runs itself."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Quorum loads MLflow at its first call; a work horse forked before that would load it
        # again for every job.
        load_mlflow()

    def execute_job(self, job, queue):
        if queue.name not in IN_PROCESS_QUEUES:
            # A database socket must not cross the fork: the horse would talk on the worker's.
            connections.close_all()
            return super().execute_job(job, queue)
        execution = self.prepare_execution(job)
        stop = threading.Event()
        beats = threading.Thread(
            target=self._heartbeats, args=(job, execution, stop), daemon=True, name="heartbeats"
        )
        # Like Django's request cycle: drop a connection that broke or outlived CONN_MAX_AGE.
        close_old_connections()
        beats.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beats.join()
            close_old_connections()
        self.set_state(WorkerStatus.IDLE)

    def perform_job(self, job, queue, execution):
        # Here, not in execute_job: a work horse calls this too, in its own process.
        with job_context(job, queue.name):
            return super().perform_job(job, queue, execution)

    def _heartbeats(self, job, execution, stop: threading.Event) -> None:
        while not stop.wait(self.job_monitoring_interval):
            try:
                self.maintain_heartbeats(job, execution)
            except Exception:  # a missed beat is not worth a failed job; the next one may land
                self.log.warning("heartbeat for job %s failed", job.id, exc_info=True)
