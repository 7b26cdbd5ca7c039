"""`python -m quorum.demo`, what `make demo` runs: Quorum and everything it needs, on one machine.

In order: check the ports; choose Redis (REDIS_URL, else one answering on 127.0.0.1:6379, else a
private redis-server under var/) and MLflow (MLFLOW_TRACKING_URI, else an `mlflow server` with its
store under var/mlflow); migrate; seed MLflow with trained scikit-learn models if its registry is
empty; mirror the registry; create the demo users; then run the RQ worker (with the scheduler), the
cron process and the web app until Ctrl-C or SIGTERM. When the demo runs MLflow itself it also
registers MLflow's webhook with the web app, so tag and alias changes show up at once.

State lives under var/ (QUORUM_VAR_DIR), so a second run reuses the database and the MLflow store
and seeds nothing. Every child gets REDIS_URL, MLFLOW_TRACKING_URI and DATABASE_URL through its
environment and runs in its own process group; on Ctrl-C or SIGTERM they are stopped newest first,
MLflow's workers and any redis-server included. Each line a child prints appears prefixed with its
name and is kept in var/log/<name>.log.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from infra.signing_key import ensure_generated_key
from quorum.localservices import (
    ServiceError,
    port_in_use,
    redis_answers,
    start_embedded_redis,
    start_mlflow_server,
    stop_process,
    wait_for_http,
)
from quorum.stop_signals import STOP_SIGNALS, Stopped, held_signals, on_signal
from registry.management.commands.create_demo_users import DEMO_PASSWORD, DEMO_USERS

ROOT = Path(__file__).resolve().parent.parent
DEMO_POLICIES = ROOT / "docs" / "policies.example.yaml"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


class DemoError(Exception):
    """The demo cannot go on; the message says what to change."""


@dataclass(frozen=True)
class Config:
    var_dir: Path
    port: int
    mlflow_port: int
    mlflow_uri: str | None  # None: start a local server on mlflow_port
    redis_url: str | None  # None: use the local Redis or start one
    database_url: str
    models: int
    versions: int

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Config:
        var_dir = Path(env.get("QUORUM_VAR_DIR") or ROOT / "var").resolve()
        try:
            return cls(
                var_dir=var_dir,
                port=int(env.get("PORT") or 8000),
                mlflow_port=int(env.get("MLFLOW_PORT") or 5000),
                mlflow_uri=env.get("MLFLOW_TRACKING_URI") or None,
                redis_url=env.get("REDIS_URL") or None,
                database_url=env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'quorum.sqlite3'}",
                models=int(env.get("QUORUM_DEMO_MODELS") or 4),
                versions=int(env.get("QUORUM_DEMO_VERSIONS") or 5),
            )
        except ValueError as error:
            raise DemoError(
                f"PORT, MLFLOW_PORT, QUORUM_DEMO_MODELS and QUORUM_DEMO_VERSIONS take integers: "
                f"{error}"
            ) from error


def busy_ports(config: Config) -> list[str]:
    """A message per port the demo needs that something else holds already."""
    wanted = [("PORT", config.port, "the web app")]
    if config.mlflow_uri is None:
        wanted.append(("MLFLOW_PORT", config.mlflow_port, "the MLflow server"))
    if config.mlflow_uri is None and config.port == config.mlflow_port:
        return [f"PORT and MLFLOW_PORT are both {config.port}: give them different values"]
    problems = []
    for variable, port, what in wanted:
        if port_in_use(port):
            hint = f"e.g. `{variable}={port + 1} make demo`"
            if variable == "MLFLOW_PORT":
                hint += ", or set MLFLOW_TRACKING_URI to an MLflow server that is already running"
            problems.append(
                f"port {port} ({what}) is already in use: set {variable} to a free port ({hint})"
            )
    return problems


class Demo:
    def __init__(self, config: Config):
        self.config = config
        self.log_dir = config.var_dir / "log"
        # (name, stop) in start order; stopped in reverse.
        self.started: list[tuple[str, Callable[[], None]]] = []
        self.services: dict[str, subprocess.Popen] = {}
        self.readers: list[threading.Thread] = []
        self.env: dict[str, str] = {}

    # -- the whole run ------------------------------------------------------------------------

    def run(self) -> int:
        problems = busy_ports(self.config)
        if problems:
            for problem in problems:
                say(problem)
            say("nothing was started")
            return 2
        self.log_dir.mkdir(parents=True, exist_ok=True)
        redis_url = self.choose_redis()
        mlflow_uri = self.choose_mlflow()
        self.env = child_env(self.config, redis_url=redis_url, mlflow_uri=mlflow_uri)
        # An MLflow the demo started delivers webhooks to loopback; one given may not.
        own_mlflow = self.config.mlflow_uri is None
        if own_mlflow:
            self.env["MLFLOW_WEBHOOK_SECRET"] = webhook_secret(self.config.var_dir)
            self.env["MLFLOW_TRACKING_TOKEN"] = guard_token(self.config.var_dir)
        if not self.env.get("QUORUM_SIGNING_KEY"):
            # Approval proofs are signed with a key of the demo's own, kept for the next run.
            key = ensure_generated_key(self.config.var_dir / "signing-key.pem")
            self.env["QUORUM_SIGNING_KEY"] = str(key)

        # Migrate, seed if empty, sync, demo users, demo policies: one process for them all.
        self.step(
            "setup",
            "demo_setup",
            f"--models={self.config.models}",
            f"--versions={self.config.versions}",
            f"--policies={DEMO_POLICIES}",
        )
        # As the Procfile: a decision never waits behind evidence, digests or syncs.
        self.spawn(
            "worker", "rqworker", "--with-scheduler", "transitions", "default", "notifications"
        )
        self.spawn("syncworker", "rqworker", "--with-scheduler", "sync")
        self.spawn("cron", "rqcron", "quorum.cron")
        web = self.spawn("web", "runserver", f"127.0.0.1:{self.config.port}", "--noreload")
        base_url = f"http://127.0.0.1:{self.config.port}"
        try:
            wait_for_http(f"{base_url}/accounts/login/", timeout=60, process=web)
        except ServiceError as error:
            raise DemoError(
                f"the web app did not start: {error} (see {self.log_dir}/web.log)"
            ) from error
        if own_mlflow:
            self.step("webhook", "register_mlflow_webhook", f"{base_url}/webhooks/mlflow")
        self.banner(base_url, mlflow_uri, redis_url, guarded=own_mlflow)
        return self.watch()

    def watch(self) -> int:
        """Until a signal arrives or a long-running child dies; a dead child ends the demo."""
        while True:
            for name, process in self.services.items():
                if process.poll() is not None:
                    say(
                        f"{name} exited with code {process.returncode} "
                        f"(see {self.log_dir}/{name}.log); stopping the demo"
                    )
                    return 1
            time.sleep(0.5)

    def stop(self) -> None:
        """Everything this run started, newest first; each stop waits for its process to end."""
        while self.started:
            name, stop = self.started.pop()
            try:
                stop()
            except Exception as error:  # keep stopping the rest whatever one of them does
                say(f"could not stop {name}: {error}")
        for reader in self.readers:
            reader.join(timeout=2)

    # -- Redis and MLflow --------------------------------------------------------------------

    def choose_redis(self) -> str:
        if self.config.redis_url:
            if not redis_answers(self.config.redis_url):
                raise DemoError(
                    f"no Redis answers at REDIS_URL={self.config.redis_url}: start it, or unset "
                    "REDIS_URL to let the demo use 127.0.0.1:6379 or start its own"
                )
            say(f"Redis: {self.config.redis_url} (REDIS_URL)")
            return self.config.redis_url
        if redis_answers(LOCAL_REDIS):
            say(f"Redis: {LOCAL_REDIS} (answering on this machine)")
            return LOCAL_REDIS
        with held_signals():
            redis = start_embedded_redis(self.config.var_dir)
            self.started.append(("redis", redis.stop))
        say(f"Redis: started a private redis-server at {redis.url}, data in var/redis")
        return redis.url

    def choose_mlflow(self) -> str:
        uri = self.config.mlflow_uri
        if uri:
            if urlparse(uri).scheme in ("http", "https"):
                try:
                    wait_for_http(f"{uri.rstrip('/')}/health", timeout=10)
                except ServiceError as error:
                    raise DemoError(
                        f"MLflow at MLFLOW_TRACKING_URI={uri} does not answer ({error}): start "
                        "it, or unset MLFLOW_TRACKING_URI to let the demo start one"
                    ) from error
            say(f"MLflow: {uri} (MLFLOW_TRACKING_URI)")
            return uri
        store = self.config.var_dir / "mlflow"
        say(
            f"MLflow: starting `mlflow server --app-name quorum-guard` on port "
            f"{self.config.mlflow_port}, store in {store}"
        )
        # The guard refuses moves of protected stages and aliases by anyone but Quorum, whose
        # processes get the token (MLFLOW_TRACKING_TOKEN, see `run`).
        guard_env = {
            "QUORUM_GUARD_SERVICE_TOKEN": guard_token(self.config.var_dir),
            "QUORUM_GUARD_REQUEST_URL": quorum_url(self.config),
            "QUORUM_GUARD_LOCK_DIR": str(store / "guard-locks"),
        }
        with held_signals():
            server = start_mlflow_server(
                store, port=self.config.mlflow_port, app_name="quorum-guard", extra_env=guard_env
            )
            self.started.append(("mlflow", server.stop))
        say(f"MLflow: {server.url} (log: {server.log_path})")
        return server.url

    # -- children ----------------------------------------------------------------------------

    def popen(self, name: str, *args: str) -> subprocess.Popen:
        with held_signals():
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us alone; we stop it in order
            )
            self.started.append((name, lambda: stop_process(process)))
        reader = threading.Thread(
            target=relay, args=(name, process.stdout, self.log_dir / f"{name}.log"), daemon=True
        )
        reader.start()
        self.readers.append(reader)
        return process

    def step(self, name: str, *args: str) -> None:
        """A command run to completion before the next one starts."""
        process = self.popen(name, *args)
        code = process.wait()
        self.started.pop()
        if code != 0:
            raise DemoError(
                f"`manage.py {' '.join(args)}` failed with code {code} "
                f"(see above, or {self.log_dir}/{name}.log)"
            )

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        """A process that runs as long as the demo does."""
        process = self.popen(name, *args)
        self.services[name] = process
        return process

    def banner(self, base_url: str, mlflow_uri: str, redis_url: str, *, guarded: bool) -> None:
        mlflow_ui = os.environ.get("MLFLOW_UI_URL") or mlflow_uri
        key = self.env.get("QUORUM_SIGNING_KEY", "")
        key_shown = "QUORUM_SIGNING_KEY (PEM)" if key.lstrip().startswith("-----") else key
        width = max(len(username) for username in DEMO_USERS)
        logins = "\n".join(
            f"    {username:<{width}}  {DEMO_PASSWORD}   {role}"
            for username, (_groups, role) in DEMO_USERS.items()
        )
        guard_note = (
            "  MLflow runs with quorum-guard: move a version to Production in the MLflow UI\n"
            "  and MLflow refuses it; request the promotion in Quorum instead.\n\n"
            if guarded
            else ""
        )
        print(
            f"\n  Quorum is running: {base_url}/\n"
            f"  MLflow UI:         {mlflow_ui}\n"
            f"  RQ jobs:           {base_url}/admin/django_rq/\n"
            f"  Redis:             {redis_url}\n"
            f"  Database:          {self.config.database_url}\n"
            f"  Logs:              {self.log_dir}/\n"
            f"  Proof signing key: {key_shown} (public keys: {base_url}/api/v1/keys)\n\n"
            f"  Log in as (user, password, role):\n{logins}\n\n"
            f"{guard_note}"
            "  Ctrl-C stops everything the demo started.\n",
            flush=True,
        )


def webhook_secret(var_dir: Path) -> str:
    """MLFLOW_WEBHOOK_SECRET, or one kept under var/ so it matches the webhook MLflow stores."""
    return os.environ.get("MLFLOW_WEBHOOK_SECRET") or kept_secret(
        var_dir / "mlflow" / "quorum-webhook-secret"
    )


def guard_token(var_dir: Path) -> str:
    """The token that makes Quorum the guard's service identity, kept under var/ so a restarted
    demo's MLflow and Quorum agree on it."""
    return kept_secret(var_dir / "mlflow" / "quorum-guard-token")


def kept_secret(path: Path) -> str:
    """The random secret kept at `path` (readable by its owner only), made at first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def quorum_url(config: Config) -> str:
    return os.environ.get("QUORUM_BASE_URL") or f"http://127.0.0.1:{config.port}"


def child_env(config: Config, *, redis_url: str, mlflow_uri: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "quorum.settings",
        "QUORUM_VAR_DIR": str(config.var_dir),
        "DATABASE_URL": config.database_url,
        "REDIS_URL": redis_url,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "QUORUM_BASE_URL": quorum_url(config),
        "PYTHONUNBUFFERED": "1",  # lines reach the terminal as they are written
    }


_print_lock = threading.RLock()  # say() may run again inside a signal handler


def say(message: str, name: str = "demo") -> None:
    with _print_lock:
        print(f"{name:>7} | {message}", flush=True)


def relay(name: str, stream: IO[bytes], log_path: Path) -> None:
    with open(log_path, "ab") as log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            log.flush()
            say(raw.decode(errors="replace").rstrip("\n"), name)


def main() -> int:
    try:
        config = Config.from_env(dict(os.environ))
    except DemoError as error:
        say(str(error))
        return 2
    demo = Demo(config)
    for signum in STOP_SIGNALS:
        signal.signal(signum, functools.partial(on_signal, say=say))
    code = 0
    try:
        code = demo.run()
    except Stopped as stop:
        say(f"{stop}: stopping")
    except (DemoError, ServiceError) as error:
        say(str(error))
        code = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave servers behind.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        anything = bool(demo.started)
        demo.stop()
        if anything:
            say("stopped everything the demo started")
    return code


if __name__ == "__main__":
    sys.exit(main())
