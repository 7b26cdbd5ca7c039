"""MLflow servers that all pytest-xdist processes of one run share.

An `mlflow server` costs 10 to 30 s of CPU to start, and every test process used to start its
own (plus one guarded server per kind of authentication): about a dozen a run on two cores. Tests
already share a server within a process (each uses model names of its own), so they can share it
across processes too.

The controller (the process that runs xdist) makes a directory for the run and hands it to its
test processes in `QUORUM_TEST_SHARED_DIR`. The first process that needs a server starts it,
under an exclusive lock, and writes where it answers into that directory; the others wait on the
lock and then use it. The controller stops every server started there when the run ends, whatever
happened to the process that started it. Without xdist (one process) nothing is shared: the
fixtures start and stop their own servers as before.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from quorum.localservices import MlflowServer, wait_for_http

SHARED_DIR_VARIABLE = "QUORUM_TEST_SHARED_DIR"


@dataclass(frozen=True)
class SharedServer:
    """Where a server of the run answers, and where it keeps its store."""

    url: str
    store_dir: Path
    log_path: Path
    pid: int

    @classmethod
    def of(cls, server: MlflowServer) -> SharedServer:
        return cls(server.url, server.store_dir, server.log_path, server.process.pid)


def shared_dir() -> Path | None:
    """The run's directory for shared servers, or None outside an xdist run."""
    value = os.environ.get(SHARED_DIR_VARIABLE)
    return Path(value) if value else None


def begin_run() -> Path:
    """Called by the xdist controller before its processes start: the run's directory."""
    path = Path(tempfile.mkdtemp(prefix="quorum-shared-servers-"))
    os.environ[SHARED_DIR_VARIABLE] = str(path)
    return path


def end_run(path: Path) -> None:
    """Called by the controller when the run ends: every server started for it stops."""
    for record in path.glob("*.json"):
        pid = json.loads(record.read_text())["pid"]
        _stop_group(pid)
    shutil.rmtree(path, ignore_errors=True)
    os.environ.pop(SHARED_DIR_VARIABLE, None)


def _stop_group(pid: int) -> None:
    """SIGTERM a server's process group (it was started in a session of its own), then SIGKILL
    after 10 s; the test process that started it may be gone, so no Popen is at hand."""
    import time

    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while another process starts the server
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def shared_server(name: str, start: Callable[[Path], SharedServer]) -> SharedServer:
    """The run's server called `name`, started by `start(store_dir)` in the first process that
    asks for it. Only inside an xdist run (`shared_dir()` is set)."""
    base = shared_dir()
    if base is None:
        raise RuntimeError(f"{SHARED_DIR_VARIABLE} is not set: no run to share servers in")
    record = base / f"{name}.json"
    with _exclusive(base / f"{name}.lock"):
        if record.exists():
            data = json.loads(record.read_text())
            server = SharedServer(
                url=data["url"],
                store_dir=Path(data["store_dir"]),
                log_path=Path(data["log_path"]),
                pid=data["pid"],
            )
            # It answered when it was recorded; one that has died since fails here, loudly.
            wait_for_http(f"{server.url}/health", timeout=30)
            return server
        server = start(base / name)
        record.write_text(
            json.dumps(
                {
                    "url": server.url,
                    "store_dir": str(server.store_dir),
                    "log_path": str(server.log_path),
                    "pid": server.pid,
                }
            )
        )
        return server


@contextmanager
def server_for_session(
    name: str, start: Callable[[Path], MlflowServer], own_store: Callable[[], Path]
) -> Iterator[SharedServer]:
    """A session fixture's server: the run's shared one inside an xdist run, else one of this
    process's own in `own_store()`, stopped when the session ends."""
    if shared_dir() is not None:
        yield shared_server(name, lambda store: SharedServer.of(start(store)))
        return
    server = start(own_store())
    try:
        yield SharedServer.of(server)
    finally:
        server.stop()
