"""`python -m quorum.demo` run as a user runs it, and the demo users it creates.

The demo gets free ports, its own var/ directory, a private redis-server and SQLite, so it touches
nothing of the suite's or the user's. Processes are followed through /proc (Linux).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from quorum.localservices import free_port, port_in_use, redis_answers, start_embedded_redis
from registry.management.commands.create_demo_users import DEMO_PASSWORD
from registry.mlflow_client import RegistryClient
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def private_redis(tmp_path):
    redis = start_embedded_redis(tmp_path / "redis")
    yield redis.url
    redis.stop()


class DemoProcess:
    """`python -m quorum.demo` in its own session, its output collected as it comes."""

    def __init__(self, env: dict[str, str]):
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quorum.demo"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None  # started with stdout=PIPE
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        """Until the demo prints `text`; fails with its output when it exits or the time is up."""

        def printed() -> bool:
            if text in self.output:
                return True
            if self.process.poll() is not None:
                self.reader.join(timeout=5)
                if text in self.output:
                    return True
                pytest.fail(f"the demo exited ({self.process.returncode}):\n{self.output[-4000:]}")
            return False

        try:
            wait_for(printed, timeout=timeout, interval=0.5, message=f"the demo to print {text!r}")
        except AssertionError as timed_out:
            pytest.fail(f"{timed_out}:\n{self.output[-4000:]}")

    def stop(self, signum: int, timeout: float = 90) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.reader.join(timeout=5)

    def kill(self) -> None:
        """Last resort when a test fails midway: nothing may outlive the test."""
        if self.process.poll() is not None:
            return
        for pid in descendants(self.process.pid) | {self.process.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, whatever session or process group it moved to."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def demo_env(var_dir: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # The demo must start its own MLflow and use SQLite under its var/, whatever the suite uses.
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_UI_URL", "QUORUM_BASE_URL"):
        env.pop(name, None)
    env.update(
        {
            "QUORUM_VAR_DIR": str(var_dir),
            "REDIS_URL": redis_url,
            "PORT": str(free_port()),
            "MLFLOW_PORT": str(free_port()),
            "QUORUM_DEMO_MODELS": "2",
            "QUORUM_DEMO_VERSIONS": "3",
        }
    )
    env.update(extra)
    return env


def logged_in(base_url: str) -> tuple[requests.Session, str]:
    """A session logged in as alice, and the models page it lands on."""
    session = requests.Session()
    login = f"{base_url}/accounts/login/"
    session.get(login, timeout=10).raise_for_status()
    response = session.post(
        login,
        data={
            "username": "alice",
            "password": DEMO_PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": login},
        timeout=30,
    )
    response.raise_for_status()
    assert response.url == f"{base_url}/", "the login did not go through"
    return session, response.text


def wait_for_page_text(
    session: requests.Session, url: str, text: str, *, timeout: float, demo: DemoProcess
) -> None:
    try:
        wait_for(
            lambda: text in session.get(url, timeout=10).text,
            timeout=timeout,
            interval=0.5,
            message=f"{text!r} to appear on {url}",
        )
    except AssertionError as timed_out:
        pytest.fail(f"{timed_out}:\n{demo.output[-4000:]}")


@pytest.mark.e2e
@pytest.mark.slow  # trains and registers the demo's models
@pytest.mark.timeout(1200)  # 2 to 3 minutes alone; four processes on two cores can triple that
def test_demo_serves_seeded_models_stops_everything_and_reuses_its_state(tmp_path, private_redis):
    env = demo_env(tmp_path / "var", private_redis)
    base_url = f"http://127.0.0.1:{env['PORT']}"
    ports = int(env["PORT"]), int(env["MLFLOW_PORT"])

    demo = DemoProcess(env)
    try:
        demo.wait_for("Quorum is running", timeout=420)
        session, home = logged_in(base_url)
        assert "tumor-classifier" in home and "wine-cultivar-classifier" in home
        # A tag moves no MLflow timestamp, so only the webhook the demo registered brings it.
        mlflow = RegistryClient(f"http://127.0.0.1:{env['MLFLOW_PORT']}")
        mlflow.set_version_tag("tumor-classifier", 1, "checked_by", "demo-webhook-test")
        wait_for_page_text(
            session,
            f"{base_url}/models/tumor-classifier/versions/1/",
            "demo-webhook-test",
            timeout=30,
            demo=demo,
        )
        # MLflow runs with the guard: what the MLflow UI sends to move a version is refused.
        refused = requests.post(
            f"http://127.0.0.1:{env['MLFLOW_PORT']}/ajax-api/2.0/mlflow/model-versions/transition-stage",
            json={"name": "tumor-classifier", "version": "1", "stage": "Production"},
            timeout=30,
        )
        assert refused.status_code == 403 and "Quorum" in refused.json()["message"]
        assert "MLflow runs with quorum-guard" in demo.output
        assert f"MLflow UI:         http://127.0.0.1:{env['MLFLOW_PORT']}" in demo.output
        assert "alice" in demo.output and DEMO_PASSWORD in demo.output
        assert "seeded 2 models, 6 versions (trained, with model artifacts)" in demo.output
        started = descendants(demo.process.pid)
        # web, worker (+ its scheduler), cron, mlflow server (+ its uvicorn worker)
        assert len(started) >= 6, demo.output[-2000:]

        assert demo.stop(signal.SIGINT) == 0
    finally:
        demo.kill()
    assert [pid for pid in started if alive(pid)] == []
    assert not any(port_in_use(port) for port in ports)
    assert redis_answers(private_redis), "the demo stopped a Redis it did not start"
    assert (tmp_path / "var" / "log" / "web.log").read_text()

    # Second run: same var/, nothing seeded again; SIGTERM stops it as Ctrl-C does.
    again = DemoProcess(env)
    try:
        again.wait_for("Quorum is running", timeout=420)  # starts MLflow and five processes again
        assert "already has models: not seeding" in again.output
        assert "tumor-classifier" in logged_in(base_url)[1]
        assert "already has webhook 'quorum'" in again.output
        started = descendants(again.process.pid)
        assert again.stop(signal.SIGTERM) == 0
    finally:
        again.kill()
    assert [pid for pid in started if alive(pid)] == []
    assert not any(port_in_use(port) for port in ports)


@pytest.mark.e2e
@pytest.mark.parametrize("variable", ["PORT", "MLFLOW_PORT"])
def test_busy_port_is_named_with_the_variable_to_change_and_nothing_starts(
    tmp_path, private_redis, variable
):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        env = demo_env(tmp_path / "var", private_redis, **{variable: str(busy)})
        result = subprocess.run(
            [sys.executable, "-m", "quorum.demo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"port {busy}" in result.stdout and f"set {variable} to a free port" in result.stdout
    assert "nothing was started" in result.stdout
    assert not (tmp_path / "var").exists()
    other = "MLFLOW_PORT" if variable == "PORT" else "PORT"
    assert not port_in_use(int(env[other]))


@pytest.mark.django_db
def test_demo_users_are_created_once_in_their_groups():
    call_command("create_demo_users")
    assert set(Group.objects.get(name="ml-leads").user_set.values_list("username", flat=True)) == {
        "alice",
        "frank",
    }
    assert set(
        Group.objects.get(name="data-science").user_set.values_list("username", flat=True)
    ) == {"bob", "carol", "dave"}
    assert User.objects.get(username="admin").is_superuser
    erin = User.objects.get(username="erin")
    assert not erin.groups.exists() and not erin.is_staff
    assert authenticate(username="bob", password=DEMO_PASSWORD) is not None

    bob = User.objects.get(username="bob")
    bob.set_password("changed-by-bob")
    bob.save()
    call_command("create_demo_users")
    assert User.objects.count() == 7
    assert authenticate(username="bob", password="changed-by-bob") is not None

    call_command("create_demo_users", "--reset")
    assert authenticate(username="bob", password=DEMO_PASSWORD) is not None
