"""Quorum deployed as docs/deploy.md says: the Procfile's processes with the production settings.

`manage.py check --deploy` runs with the production variables that docs/deploy.md documents, so
the documentation and the settings cannot drift apart. Then the Procfile's `release`, `web`
(gunicorn, two processes), two `worker` processes and the `sync` worker run against the test's
PostgreSQL database, Redis and MLflow server, and a real browser takes a version to Production
through them.

Static files are collected (`collectstatic` into a temporary STATIC_ROOT) rather than served from
the finders: that is what production does, so the test covers the hashed, compressed files and
WhiteNoise serving them from gunicorn, which the finders would bypass.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.conf import global_settings
from django.core.management import call_command
from django.test import override_settings

from quorum.localservices import free_port, stop_process, wait_for_http
from registry.content import digest_missing
from registry.jobs import SYNC_QUEUE
from registry.sync import sync_registry
from reviews.execution import jobs
from reviews.models import AuditEvent, Decision, Execution, TransitionRequest
from reviews.notify import QUEUE as NOTIFY_QUEUE
from tests.browser import PASSWORD, Session, chromium
from tests.mlflow_registry import register_fraud_model
from tests.processes import children, database_url
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The virtualenv holds the `python` and `gunicorn` the Procfile names.
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    """The Procfile's process types and their commands."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(
        (name.strip(), command.strip())
        for name, _, command in (line.partition(":") for line in lines)
        if command.strip() and not name.startswith("#")
    )


def documented_production_env() -> dict[str, str]:
    """The `# production.env` block of docs/deploy.md as a dict."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = re.search(r"```sh\n# production\.env\n(.*?)```", text, re.DOTALL)
    assert block, "docs/deploy.md has no ```sh block starting with '# production.env'"
    env = {}
    for line in block.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def base_env(*layers: dict[str, str], **variables: str) -> dict[str, str]:
    """Only what a process needs to start, then the layers and variables given, later ones
    winning: nothing leaks in from the test run's environment (its DEBUG, DATABASE_URL, ...)."""
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "LANG": "C.UTF-8"}
    env.update({name: os.environ[name] for name in ("HOME", "TMPDIR") if name in os.environ})
    for layer in layers:
        env.update(layer)
    env.update(variables)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> Path:
    """STATIC_ROOT after `collectstatic` with the production storage (the build step)."""
    root = tmp_path_factory.mktemp("static")
    result = manage(
        "collectstatic",
        "--noinput",
        env=base_env(WHITENOISE_USE_FINDERS="false", STATIC_ROOT=str(root)),
    )
    assert result.returncode == 0, result.stderr
    assert (root / "staticfiles.json").exists()
    return root


def test_check_deploy_is_clean_with_the_documented_production_variables(collected_static):
    documented = documented_production_env()
    assert documented["SECRET_KEY"] == "", "docs/deploy.md must not publish a secret key"
    env = base_env(
        documented,
        SECRET_KEY=secrets.token_urlsafe(50),
        MLFLOW_WEBHOOK_SECRET=secrets.token_urlsafe(32),
        QUORUM_SIGNING_KEY=os.environ["QUORUM_SIGNING_KEY"],
        STATIC_ROOT=str(collected_static),
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_without_a_secret_key_or_collected_static_files(tmp_path):
    env = base_env(documented_production_env(), STATIC_ROOT=str(tmp_path / "never-collected"))
    env.pop("SECRET_KEY")
    result = manage("check", "--deploy", env=env)
    assert result.returncode == 1
    assert "(quorum.E001) SECRET_KEY is not set" in result.stderr
    assert "(quorum.E002) WHITENOISE_USE_FINDERS is off" in result.stderr
    assert (
        "(quorum.E004) QUORUM_SIGNING_KEY names the file /etc/quorum/signing-key.pem, which "
        "cannot be read"
    ) in result.stderr

    # Behind the documented proxy without saying how many: the sign-in throttle would count the
    # proxy's address for everyone.
    env = base_env(documented_production_env(), QUORUM_PROXY_COUNT="0")
    env.pop("QUORUM_SIGNING_KEY")  # and every host would make a signing key of its own
    result = manage("check", "--deploy", env=env)
    assert "(quorum.W003) SECURE_PROXY_SSL_HEADER says a proxy is in front" in result.stderr
    assert "(quorum.E003) QUORUM_SIGNING_KEY is not set" in result.stderr

    # The demo and the tests run without a key: the plain check (runserver's) passes.
    result = manage("check", env=base_env())
    assert result.returncode == 0, result.stderr


# -- the Procfile's processes --------------------------------------------------------------------


class Stack:
    """The Procfile's processes, each in its own process group, with its output in a log file."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: str) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("w") as log:
            process = subprocess.Popen(
                ["sh", "-c", f"exec {command}"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def run(self, name: str, command: str) -> None:
        result = subprocess.run(
            ["sh", "-c", command], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"

    def stop(self) -> None:
        for name, process in reversed(self.processes.items()):
            stop_process(process, timeout=15)
            print(f"--- {name} (exit {process.returncode}):")
            print((self.logs / f"{name}.log").read_text(errors="replace")[-4000:])


@pytest.fixture
def deployed(
    mlflow_server, redis_url, rq_queue, policies, collected_static, tmp_path, settings
) -> Iterator[SimpleNamespace]:
    """release, web (2 gunicorn processes), 2 workers and the sync worker, as the Procfile runs
    them."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip(
            "the deployment runs its processes against a shared PostgreSQL database, as "
            "production does: set DATABASE_URL to PostgreSQL"
        )
    from rq import Worker

    queues = [rq_queue(name) for name in ("default", jobs.QUEUE, SYNC_QUEUE, NOTIFY_QUEUE)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stack = Stack(
        base_env(
            DATABASE_URL=database_url(),
            REDIS_URL=redis_url,
            MLFLOW_TRACKING_URI=mlflow_server.url,
            DEBUG="false",
            SECRET_KEY=secrets.token_urlsafe(50),
            QUORUM_SIGNING_KEY=os.environ["QUORUM_SIGNING_KEY"],
            ALLOWED_HOSTS="127.0.0.1",
            QUORUM_BASE_URL=base,
            WHITENOISE_USE_FINDERS="false",
            STATIC_ROOT=str(collected_static),
            GUNICORN_BIND=f"127.0.0.1:{port}",
            WEB_CONCURRENCY="2",
            EMAIL_URL="console://",
        ),
        tmp_path,
    )
    processes = procfile()
    try:
        stack.run("release", processes["release"])
        web = stack.start("web", processes["web"])
        workers = [stack.start(f"worker-{n}", processes["worker"]) for n in (1, 2)]
        workers.append(stack.start("sync", processes["sync"]))
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=web)
        wait_for(
            lambda: len(children(web.pid)) == 2,
            timeout=20,
            interval=0.2,
            message="2 gunicorn workers",
        )
        connection = queues[0].connection
        wait_for(
            lambda: {w.pid for w in Worker.all(connection=connection)} >= {p.pid for p in workers},
            timeout=60,
            interval=0.2,
            message="the RQ workers to register",
        )
        yield SimpleNamespace(url=base, web=web, workers=workers)
    finally:
        stack.stop()


@pytest.fixture
def browser(deployed):
    with chromium() as launched:
        yield launched


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
# Its setup starts five processes (release, gunicorn, three workers), each importing Django and
# MLflow: about a minute alone, over four on two cores shared with three other test processes.
@pytest.mark.timeout(900)
def test_promotion_through_gunicorn_and_two_rq_workers(
    deployed, browser, mlflow_client, unique_name, policies
):
    # The cast's passwords are hashed with the tests' fast hasher, which production leaves out.
    with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
        for user in policies.values():
            user.set_password(PASSWORD)
            user.save(update_fields=["password"])
    fraud = f"fraud-{unique_name[-6:]}"
    register_fraud_model(mlflow_client, fraud)
    sync_registry(model=fraud, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    sessions: list[Session] = []

    def sign_in(username: str) -> Session:
        sessions.append(Session(browser, deployed, username))
        return sessions[-1]

    try:
        requester = sign_in("requester")
        page = requester.goto(f"/models/{fraud}/versions/5/")
        page.fill("#promotion-comment", "Weekly retrain, promoted through the deployment.")
        page.click("#promotion-form button[type=submit]")
        page.wait_for_url(re.compile(r".*/reviews/\d+/$"))
        pk = int(page.url.rstrip("/").rsplit("/", 1)[1])
        assert page.locator("#status-badge").inner_text() == "pending"

        # Static files: the collected, hashed, compressed copies, from gunicorn through WhiteNoise.
        stylesheet = page.locator("link[rel=stylesheet]").first.get_attribute("href")
        assert re.fullmatch(r"/static/quorum\.[0-9a-f]{12}\.css", stylesheet), stylesheet
        response = requests.get(
            deployed.url + stylesheet, headers={"Accept-Encoding": "gzip"}, timeout=10
        )
        assert response.status_code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]

        for username in ("lead", "scientist1", "scientist2"):
            approver = sign_in(username)
            review = approver.goto(f"/reviews/{pk}/")
            # Plotly draws the comparison: plotly.js came from our static files.
            review.wait_for_selector("#chart-comparison.js-plotly-plot .main-svg")
            review.fill("#vote-comment", f"Checked by {username}.")
            review.click("button[value=approve]")
            review.wait_for_url(f"**/reviews/{pk}/")

        # A worker process carries the transition out; the page shows it without a reload.
        review.evaluate("window.stillTheSamePage = true")
        review.wait_for_function(
            # A function, not an expression: Playwright evaluates an expression with eval, which
            # the Content-Security-Policy forbids.
            "() => document.getElementById('execution-label').textContent === 'done'",
            timeout=60_000,
        )
        assert review.evaluate("window.stillTheSamePage") is True
        assert review.locator("#status-badge").inner_text() == "approved · done"
        assert review.locator("#execution-outcome").inner_text() == (
            "Version 5 is now in Production (version 3 archived)."
        )
        for session in sessions:
            session.assert_clean()
    finally:
        for session in sessions:
            session.context.close()

    assert mlflow_client.get_version(fraud, 5).stage == "Production"
    assert mlflow_client.get_version(fraud, 3).stage == "Archived"
    request = TransitionRequest.objects.get(pk=pk)
    assert (request.decision, request.execution) == (Decision.APPROVED, Execution.DONE)
    assert AuditEvent.objects.filter(request=request, action="transition.done").count() == 1
    call_command("verify_audit")
    assert all(process.poll() is None for process in [deployed.web, *deployed.workers])
