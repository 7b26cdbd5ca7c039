"""Fixtures for the real services the tests talk to (an `mlflow server`, guarded ones, Redis and
the database), and the settings every test runs with.

The MLflow server is started once per session on a free port with a temporary SQLite store. Tests
that change MLflow use model names of their own (`unique_name`), so they never see each other's
changes even though they share the server.

The other fixtures that several folders share are in tests/fixtures/, one module per concern,
loaded as plugins below; a fixture of one folder is in that folder's conftest.py. Plain helpers
live in modules of their own (factories.py, mlflow_registry.py, policy_files.py, mail.py,
waiting.py, pages.py, browser.py, processes.py, concurrency.py); no test module imports from
another test module.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.test import override_settings

from quorum.localservices import MlflowServer, free_port, redis_answers, start_mlflow_server
from registry.mlflow_client import MlflowError, RegistryClient
from tests.parallel import in_lanes, shared_server, use_own_redis_database

pytest_plugins = [
    "tests.fixtures.cast",
    "tests.fixtures.world",
    "tests.fixtures.queues",
    "tests.fixtures.transitions",
    "tests.fixtures.identity_provider",
]

use_own_redis_database()  # before any test or fixture talks to Redis


# Fixtures that start (or share) a real server process: an MLflow server, RQ worker processes,
# Django's live server. The tests using them are marked `servers` (pyproject.toml), which
# `make test-fast` leaves out with the end-to-end suites.
SERVER_FIXTURES = (
    "mlflow_server",
    "private_mlflow",
    "guarded_mlflow_servers",
    "workers",
    "live_server",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the markers
def pytest_itemcollected(item):
    if any(name in item.fixturenames for name in SERVER_FIXTURES):
        item.add_marker(pytest.mark.servers)


def pytest_collection_modifyitems(config, items):
    """The slow tests first and the end-to-end ones dealt out evenly over the xdist processes
    (tests/parallel.py `in_lanes`, for `--dist worksteal`), so that the processes finish
    together rather than one of them run every end-to-end test in a row; the tests that share a
    server of their process's own one after another in one process (`shared_server`)."""

    def heavy(item) -> int:
        if item.get_closest_marker("slow"):
            return 2
        return 1 if item.get_closest_marker("e2e") else 0

    lanes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    items[:] = in_lanes(items, heavy, lanes, shared_server)


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """Production's PBKDF2 costs ~0.3 s a user; tests create many users and test no hashing."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session", autouse=True)
def signing_key(tmp_path_factory):
    """A signing key of the session's own for the approval proofs, also for the worker processes
    tests start (through the environment), instead of one generated under the checkout's var/."""
    from infra.signing_key import ensure_generated_key

    path = ensure_generated_key(tmp_path_factory.mktemp("keys") / "signing-key.pem")
    saved = settings.QUORUM_SIGNING_KEY, os.environ.get("QUORUM_SIGNING_KEY")
    settings.QUORUM_SIGNING_KEY = os.environ["QUORUM_SIGNING_KEY"] = str(path)
    yield path
    settings.QUORUM_SIGNING_KEY = saved[0]
    if saved[1] is None:
        os.environ.pop("QUORUM_SIGNING_KEY", None)
    else:
        os.environ["QUORUM_SIGNING_KEY"] = saved[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` for the whole session; settings point at it while it runs.

    One per xdist process, not one per run: many tests sync the whole registry, and on a server
    shared with other processes they would see those processes' models change in the middle of
    the test (an out-of-band move to revert, say) and act on them."""
    store: Path = tmp_path_factory.mktemp("mlflow")
    server = start_mlflow_server(store, port=free_port())
    saved = settings.MLFLOW_TRACKING_URI, settings.MLFLOW_UI_URL
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_UI_URL = server.url
    yield server
    settings.MLFLOW_TRACKING_URI, settings.MLFLOW_UI_URL = saved
    server.stop()


@pytest.fixture
def mlflow_client(mlflow_server) -> RegistryClient:
    return RegistryClient(mlflow_server.url)


@pytest.fixture(autouse=True)
def session_registry_left_as_found(request):
    """Models a test registers in the session's MLflow are deleted when it ends (those of module
    fixtures, registered before it starts, stay). Tests sync the whole registry, and the mirror
    of each test starts empty: without this, every full sync read again every model and run that
    the tests before it had registered, and the run grew quadratically slower."""
    if "mlflow_server" not in request.fixturenames:
        yield
        return
    client = RegistryClient(request.getfixturevalue("mlflow_server").url)
    before = {model.name for model in client.list_models()}
    yield
    try:
        for model in client.list_models():
            if model.name not in before:
                client.delete_model(model.name)
    except MlflowError as error:  # a test that leaves MLflow unreachable: its models stay
        warnings.warn(f"models of {request.node.name} left in MLflow: {error}", stacklevel=1)


@pytest.fixture
def unique_name(request):
    """A model name no other test uses: `<test name>-<random>`."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def webhook_name(mlflow_client, unique_name):
    """A webhook name of this test's own, deleted from MLflow afterwards."""
    name = f"quorum-{unique_name}"
    yield name
    for webhook_id, other_name, _ in mlflow_client.list_webhooks():
        if other_name == name:
            mlflow_client.delete_webhook(webhook_id)


@pytest.fixture(scope="session")
def redis_url():
    """The Redis that `make test` chose (REDIS_URL); the tests need a real one."""
    url = settings.REDIS_URL
    if not redis_answers(url):
        pytest.fail(
            f"No Redis answers at {url}. Run the suite with `make test`, which starts one when "
            "none is running, or set REDIS_URL to a Redis the tests may use."
        )
    return url


# -- MLflow with the guard (mlflow-quorum-guard) ------------------------------------------------

GUARD_TOKEN = "quorum-service-token-for-tests-0123456789"
GUARD_ADMIN = ("admin", "Guard-admin-pw-1234!")
GUARD_PASSWORD = "User-pw-1234-guard!"
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


@dataclass
class GuardedMlflow:
    """A real `mlflow server --app-name quorum-guard`, alone (`token`) or over basic-auth."""

    auth: str
    server: MlflowServer
    lock_dir: Path  # QUORUM_GUARD_LOCK_DIR

    @property
    def url(self) -> str:
        return self.server.url

    def service_env(self) -> dict[str, str]:
        """What Quorum's processes set to be the guard's service identity."""
        if self.auth == "token":
            return {"MLFLOW_TRACKING_TOKEN": GUARD_TOKEN}
        return {"MLFLOW_TRACKING_USERNAME": "quorum", "MLFLOW_TRACKING_PASSWORD": GUARD_PASSWORD}

    def credentials(self, who: str) -> dict:
        """`requests` keyword arguments for a caller: 'quorum', 'alice' (EDIT on what she is
        given), 'bob' (READ only) or 'nobody' (no credentials)."""
        if who == "nobody":
            return {}
        if self.auth == "token":
            if who != "quorum":
                return {}
            return {"headers": {"Authorization": f"Bearer {GUARD_TOKEN}"}}
        return {"auth": (who, GUARD_PASSWORD)}

    def grant(self, model_name: str, permission: str = "EDIT", username: str = "alice") -> None:
        """MLflow's own permission on a model (basic-auth only; alone, everyone has them all).
        EDIT lets a user register versions, transition them and set aliases; deleting needs
        MANAGE."""
        if self.auth != "basic-auth":
            return
        resource = {
            "username": username,
            "resource_type": "registered_model",
            "resource_id": model_name,
        }
        permissions = f"{self.url}/api/3.0/mlflow/users/permissions"
        # A grant does not replace an earlier one: revoke it first (a 4xx when there is none).
        requests.post(f"{permissions}/revoke", json=resource, auth=GUARD_ADMIN, timeout=10)
        response = requests.post(
            f"{permissions}/grant",
            json={**resource, "permission": permission},
            auth=GUARD_ADMIN,
            timeout=10,
        )
        response.raise_for_status()


def _start_guarded_mlflow(store: Path, auth: str, settings: dict[str, str]) -> GuardedMlflow:
    lock_dir = store / "locks"
    env = {"QUORUM_GUARD_AUTH": auth, "QUORUM_GUARD_LOCK_DIR": str(lock_dir), **settings}
    if auth == "token":
        env["QUORUM_GUARD_SERVICE_TOKEN"] = GUARD_TOKEN
    else:
        store.mkdir(parents=True, exist_ok=True)
        ini = store / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{store / 'basic_auth.db'}\nadmin_username = admin\n"
            # A password check costs ~0.15 s of CPU (scrypt) on every request without MLflow's
            # credential cache; changes made through its API still take effect at once.
            "auth_cache_ttl_seconds = 600\n"
        )
        env.update(
            QUORUM_GUARD_SERVICE_USERS="quorum",
            MLFLOW_AUTH_CONFIG_PATH=str(ini),
            MLFLOW_AUTH_ADMIN_PASSWORD=GUARD_ADMIN[1],
            MLFLOW_FLASK_SERVER_SECRET_KEY="guard-tests-flask-secret-key",
        )
    server = start_mlflow_server(store, port=free_port(), app_name="quorum-guard", extra_env=env)
    guarded = GuardedMlflow(auth=auth, server=server, lock_dir=lock_dir)
    if auth == "basic-auth":
        for username in ("quorum", "alice", "bob"):
            requests.post(
                f"{server.url}/api/2.0/mlflow/users/create",
                json={"username": username, "password": GUARD_PASSWORD},
                auth=GUARD_ADMIN,
                timeout=10,
            ).raise_for_status()
        # Quorum's user must be able to edit every model, including ones created after it:
        # docs/enforcement.md makes it an MLflow admin.
        requests.patch(
            f"{server.url}/api/2.0/mlflow/users/update-admin",
            json={"username": "quorum", "is_admin": True},
            auth=GUARD_ADMIN,
            timeout=10,
        ).raise_for_status()
    return guarded


@pytest.fixture(scope="session")
def guarded_mlflow_servers(tmp_path_factory):
    """`get(auth, **settings)`: the session's guarded MLflow for 'token' or 'basic-auth' with
    these further QUORUM_GUARD_* settings, started when first asked for. The tests that use them
    run in one process (tests/parallel.py `shared_server`), so each is started once in a run."""
    servers: dict[tuple, GuardedMlflow] = {}

    def get(auth: str, **settings: str) -> GuardedMlflow:
        key = (auth, *sorted(settings.items()))
        if key not in servers:
            store = tmp_path_factory.mktemp(f"guard-{auth}")
            servers[key] = _start_guarded_mlflow(store, auth, settings)
        return servers[key]

    yield get
    for guarded in servers.values():
        guarded.server.stop()


@pytest.fixture
def as_quorum(monkeypatch, settings):
    """`as_quorum(guarded)`: Quorum talks to this guarded MLflow as the guard's service identity."""

    def use(guarded: GuardedMlflow) -> RegistryClient:
        for key in CREDENTIAL_VARIABLES:
            monkeypatch.delenv(key, raising=False)
        for key, value in guarded.service_env().items():
            monkeypatch.setenv(key, value)
        settings.MLFLOW_TRACKING_URI = settings.MLFLOW_UI_URL = guarded.url
        return RegistryClient(guarded.url)

    return use
