"""What the benchmarks share: a fresh database, Redis, an MLflow server, worker processes.

Every benchmark process runs the real stack on this machine. The database is PostgreSQL when one
answers (DATABASE_URL, else a fresh `quorum_bench_<name>` database on 127.0.0.1:5432, dropped and
created anew each run) because several processes write at once, else a fresh SQLite file under
var/bench/. Redis is REDIS_URL, else database 13 of the local Redis, else a private redis-server.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DIR = ROOT / "var" / "bench"
LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432"
LOCAL_REDIS = "redis://127.0.0.1:6379/13"


@contextlib.contextmanager
def bench_stack(
    name: str,
    *,
    workers: int = 0,
    queues: tuple[str, ...] = (),
    worker_queues: Sequence[tuple[str, ...]] = (),
    store: Path | None = None,
    mlflow_workers: int = 1,
) -> Iterator[str]:
    """Sets up the environment and Django, starts MLflow and `workers` RQ worker processes;
    yields the MLflow URL and stops everything it started on the way out.

    The workers run `manage.py rqworker QUEUES --with-scheduler`; with no queues named, on all of
    Quorum's queues. `worker_queues` starts one more worker per entry, on those queues (e.g.
    `procfile_workers()`: the worker processes production's Procfile runs). MLflow keeps its data
    in `store`, by default a new directory under var/bench/, and answers in `mlflow_workers`
    processes."""
    from quorum.localservices import (
        free_port,
        redis_answers,
        start_embedded_redis,
        start_mlflow_server,
        stop_process,
    )

    # `timeout` and CI stop a benchmark with SIGTERM, which skips `finally` blocks by default:
    # turn it into an exit so the worker processes and the MLflow server are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if "DATABASE_URL" not in os.environ:  # setdefault would build the fresh database anyway
        os.environ["DATABASE_URL"] = fresh_database(name)
    stops: list[Callable[[], None]] = []
    if "REDIS_URL" not in os.environ:
        if redis_answers(LOCAL_REDIS):
            os.environ["REDIS_URL"] = LOCAL_REDIS
        else:
            redis = start_embedded_redis(BENCH_DIR)
            stops.append(redis.stop)
            os.environ["REDIS_URL"] = redis.url
    store = store or BENCH_DIR / f"mlflow-{name}-{int(time.time())}"
    server = start_mlflow_server(store, port=free_port(), workers=mlflow_workers)
    stops.append(server.stop)
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quorum.settings")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import django_rq
        from django.conf import settings

        for queue in settings.QUORUM_QUEUES:
            django_rq.get_queue(queue).empty()
        for named in [queues] * workers + list(worker_queues):
            process = subprocess.Popen(
                [sys.executable, "manage.py", "rqworker", *named, "--with-scheduler"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            stops.append(functools.partial(stop_process, process))
        yield server.url
    finally:
        for stop in reversed(stops):
            stop()


def procfile_workers() -> list[tuple[str, ...]]:
    """The queues of each `rqworker` process type in the Procfile, as production starts them."""
    found = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        _, _, command = line.partition(":")
        words = command.split()
        if "rqworker" in words:
            after = words[words.index("rqworker") + 1 :]
            found.append(tuple(word for word in after if not word.startswith("-")))
    return found


def fresh_database(name: str) -> str:
    """A new, empty PostgreSQL database when the local server answers; else a new SQLite file."""
    from quorum.localservices import database_answers

    if database_answers(f"{LOCAL_POSTGRES}/postgres"):
        import psycopg

        database = f"quorum_bench_{name}"
        with psycopg.connect(f"{LOCAL_POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')
        return f"{LOCAL_POSTGRES}/{database}"
    path = BENCH_DIR / f"{name}.sqlite3"
    path.unlink(missing_ok=True)
    return f"sqlite:///{path}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary_ms(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1000:.0f} ms, p95 {percentile(values, 0.95) * 1000:.0f}"
        f" ms, p99 {percentile(values, 0.99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"
    )


def database_vendor() -> str:
    from django.db import connection

    return connection.vendor


def machine_cpu() -> tuple[int, int]:
    """(busy, all) CPU time of the whole machine since boot, in clock ticks, from /proc/stat:
    the difference over a period gives how busy its cores were, whichever process used them."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle and waiting for I/O
    return sum(ticks) - idle, sum(ticks)


def busy_between(start: tuple[int, int], end: tuple[int, int]) -> float:
    """The fraction of all cores' time that was busy between two `machine_cpu()` readings."""
    return (end[0] - start[0]) / max(1, end[1] - start[1])
