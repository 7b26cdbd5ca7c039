"""What the reliability tests share: worker processes on the test database and a private MLflow
server (the audit check each test ends with is in checks.py).

These tests run real processes (workers, MLflow, Redis) against committed data, so they use
transactional tests on PostgreSQL and skip with the reason on SQLite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import django_rq
import pytest
from django.conf import settings as django_settings

from quorum.localservices import free_port, start_mlflow_server, stop_process
from tests.processes import children, database_url

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Starts RQ worker processes (and the cron process) on the test database; stops them all at
    the end.

    `start(...)` runs `tests/reliability/run_worker.py`: the worker `manage.py rqworker` runs, on
    the queues given (all of Quorum's by default), with a job monitoring (heartbeat) interval a
    test can shorten. `start_cron(...)` runs `manage.py rqcron quorum.cron`, which enqueues the
    reconciler and the periodic syncs.
    """

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def start(
        self,
        *,
        mlflow_url: str,
        redis_url: str | None = None,
        heartbeat: int = 1,
        scheduler: bool = False,
        queues: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        command = [sys.executable, str(ROOT / "tests/reliability/run_worker.py")]
        command += ["--heartbeat", str(heartbeat)] + (["--with-scheduler"] if scheduler else [])
        return self._spawn("worker", [*command, *queues], mlflow_url, redis_url, env)

    def start_cron(
        self, *, mlflow_url: str, redis_url: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "rqcron", "quorum.cron"]
        return self._spawn("cron", command, mlflow_url, redis_url, env)

    def _spawn(self, kind, command, mlflow_url, redis_url, env) -> subprocess.Popen:
        log_path = self.tmp_path / f"{kind}-{len(self.processes)}.log"
        full_env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url or django_settings.REDIS_URL,
            "MLFLOW_TRACKING_URI": mlflow_url,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
            **(env or {}),
        }
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the worker and its work horse
            )
        self.processes.append((process, log_path))
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL the worker and its work horse at once, as when its machine dies.

        The horse runs in a process group of its own (RQ calls setpgrp), so it is found by its
        parent id.
        """
        for pid in [*children(process.pid), process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process, log_path in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGCONT)  # a test may have left it stopped
                except ProcessLookupError:
                    pass
                horses = children(process.pid)
                stop_process(process)
                for pid in horses:  # a horse stuck on a held MLflow answer outlives a warm stop
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            print(f"--- {log_path.name}\n{log_path.read_text(errors='replace')[-3000:]}")
        # A killed worker's scheduler keeps its locks for a minute: the next test's workers
        # would run without a scheduler (the reconciler's case, not theirs).
        from rq.scheduler import RQScheduler

        redis = django_rq.get_connection("default")
        redis.delete(*(RQScheduler.get_locking_key(q) for q in django_settings.QUORUM_QUEUES))


@pytest.fixture
def workers(tmp_path, rq_queue):
    for name in django_settings.QUORUM_QUEUES:  # nothing left over from other tests runs here
        rq_queue(name)
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def private_mlflow(tmp_path, settings):
    """An MLflow server of this test's own, which the test may stop and restart on its port."""
    server = start_mlflow_server(tmp_path / "mlflow", port=free_port())
    settings.MLFLOW_TRACKING_URI = server.url
    servers = [server]
    yield servers
    for each in servers:
        each.stop()
