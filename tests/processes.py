"""What tests that start other processes (workers, gunicorn, the CLI's server, `manage.py`) need:
the test database's address for them, the processes they started in turn, the worker processes
that every test with a real worker shares (`Workers`, behind the `workers` fixture), one
`manage.py` command run as a release step runs it (`manage`), and `quorum verify` run as a CI step
runs it (`quorum_verify`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import django_rq
import pytest
from django.conf import settings
from rq import SimpleWorker

from quorum.localservices import free_port, stop_process


def database_url() -> str:
    """The test database as a DATABASE_URL for another process; skips the test on SQLite, which
    a second process cannot share with the test's transaction."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip(
            "a worker process needs a database it can share: set DATABASE_URL to PostgreSQL"
        )
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def children(pid: int) -> list[int]:
    """The ids of the processes whose parent is `pid` (Linux /proc), whatever thread forked them."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def group_commands(pgid: int) -> list[str]:
    """The command lines of the processes in process group `pgid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


ROOT = Path(__file__).resolve().parents[1]
STOP_DEADLINE = 10.0  # seconds a worker gets after SIGTERM before it is SIGKILLed


def manage(*args: str, var_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """`python manage.py ARGS` in a process of its own, with nothing of the test run's environment
    but PATH: its var/ under `var_dir`, an MLflow address where nothing answers (the guard probe
    says nothing then), and the variables given."""
    environment = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "QUORUM_VAR_DIR": str(var_dir),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def quorum_verify(*args: str, tracking_uri: str | None, **env: str) -> subprocess.CompletedProcess:
    """`quorum verify ARGS` with only the given environment, as a CI step would run it."""
    environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env}
    if tracking_uri:
        environment["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.run(
        [sys.executable, "-m", "quorum_cli", "verify", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Workers:
    """RQ worker processes (and the cron process) on the test database, started as the Procfile
    starts them; `stop_all()` ends every one of them within a bounded time.

    `start(...)` runs `tests/run_worker.py`: the worker `manage.py rqworker` runs (Quorum's
    worker class, forking a work horse for all but transitions), on the queues given (all of
    Quorum's by default), with a job monitoring (heartbeat) interval a test can shorten.
    `start_cron(...)` runs `manage.py rqcron quorum.cron`. Settings a test changes reach the
    processes only through `env` (they read their settings from the environment).

    Stopping never depends on the worker's cooperation: SIGTERM to its process group, then
    SIGKILL to the group and to the work horses (which RQ puts in groups of their own) after
    STOP_DEADLINE seconds, whatever the Redis client does while it tears down.
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
        command = [sys.executable, str(ROOT / "tests/run_worker.py")]
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
            "REDIS_URL": redis_url or settings.REDIS_URL,
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
        process.wait(timeout=STOP_DEADLINE)

    def stop_all(self) -> None:
        for process, log_path in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGCONT)  # a test may have left it stopped
                except ProcessLookupError:
                    pass
                horses = children(process.pid)
                stop_process(process, timeout=STOP_DEADLINE)
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
        redis.delete(*(RQScheduler.get_locking_key(q) for q in settings.QUORUM_QUEUES))


class BurstWorker(SimpleWorker):
    """RQ's SimpleWorker for a burst in the test process: no command channel (nobody sends a
    burst run commands), so no listener thread to stop at teardown."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass
