"""Fixtures for the real services the tests talk to (an `mlflow server`, Redis and the database),
the cast, and the world most review tests start from.

The MLflow server is started once per session on a free port with a temporary SQLite store. Tests
that change MLflow use model names of their own (`unique_name`), so they never see each other's
changes even though they share the server.

Plain helpers live in modules of their own (factories.py, waiting.py, pages.py, browser.py,
processes.py, concurrency.py); no test module imports from another test module.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
import requests
from django.conf import settings
from django.test import override_settings

from quorum.localservices import MlflowServer, free_port, redis_answers, start_mlflow_server
from quorum_cli import attestation as proof
from registry import content
from registry.jobs import SYNC_QUEUE
from registry.mlflow_client import MlflowError, RegistryClient
from registry.sync import sync_registry
from reviews.decisions import opening
from reviews.execution import jobs, proof_keys
from tests.factories import approve_all
from tests.parallel import in_lanes, use_own_redis_database
from tests.policy_files import STANDARD_POLICIES
from tests.waiting import wait_for

use_own_redis_database()  # before any test or fixture talks to Redis

if TYPE_CHECKING:
    from registry.models import RegisteredModel


def pytest_collection_modifyitems(config, items):
    """The slow tests first and the end-to-end ones dealt out evenly over the xdist processes
    (tests/parallel.py `in_lanes`, for `--dist worksteal`), so that the processes finish
    together rather than one of them run every end-to-end test in a row."""

    def heavy(item) -> int:
        if item.get_closest_marker("slow"):
            return 2
        return 1 if item.get_closest_marker("e2e") else 0

    lanes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    items[:] = in_lanes(items, heavy, lanes)


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
def oidc_provider():
    """A real OpenID Connect provider (tests/oidc_provider.py) in its own process."""
    import subprocess
    import sys

    from tests.oidc_provider import ProviderControl

    port = free_port()
    control = ProviderControl(f"http://127.0.0.1:{port}", "quorum", "quorum-test-secret")
    script = Path(__file__).with_name("oidc_provider.py")
    process = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "--port",
            str(port),
            "--client-id",
            control.client_id,
            "--client-secret",
            control.client_secret,
        ],
        stdout=subprocess.DEVNULL,
    )

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the test OIDC provider exited with {process.returncode}")
        try:
            return requests.get(control.url + "/.well-known/openid-configuration", timeout=1).ok
        except requests.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=20, message="the test OIDC provider to answer")
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    try:
        yield control
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sso(settings, oidc_provider):
    """Quorum configured for the test provider: its groups `idp-ml-leads` and `idp-ds-*` map to
    the managed groups ml-leads and data-science, `idp-admins` makes staff."""
    from identity import provider

    settings.OIDC_ISSUER = oidc_provider.url
    settings.OIDC_PROVIDER_NAME = "Test IdP"
    settings.OIDC_RP_CLIENT_ID = oidc_provider.client_id
    settings.OIDC_RP_CLIENT_SECRET = oidc_provider.client_secret
    settings.QUORUM_OIDC_GROUP_MAP = "idp-ml-leads=ml-leads,idp-ds-*=data-science"
    settings.QUORUM_OIDC_STAFF_GROUPS = "idp-admins"
    provider.forget()
    oidc_provider.misbehave(None)
    yield oidc_provider
    provider.forget()


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


# -- the cast: who requests, who approves, who may not ------------------------------------------


@pytest.fixture
def cast(django_user_model):
    """Users by role; `policies` puts them in their groups."""
    names = ["requester", "lead", "scientist1", "scientist2", "scientist3", "outsider"]
    people = {name: django_user_model.objects.create_user(name, password="pw") for name in names}
    people["admin"] = django_user_model.objects.create_superuser("admin", password="pw")
    return people


@pytest.fixture
def policies(cast):
    """The production (1 ml-lead + 2 data-science, gated) and staging policies, loaded."""
    from reviews.policies.loading import policies_load

    policies_load(text=STANDARD_POLICIES)
    return cast


@pytest.fixture
def requester(cast):
    return cast["requester"]


@pytest.fixture
def lead(cast):
    return cast["lead"]


@pytest.fixture
def scientist1(cast):
    return cast["scientist1"]


@pytest.fixture
def scientist2(cast):
    return cast["scientist2"]


@pytest.fixture
def outsider(cast):
    return cast["outsider"]


@pytest.fixture
def admin_user(cast):
    return cast["admin"]


# -- the world: the setup most review tests start from ------------------------------------------


@dataclass
class World:
    people: dict  # the cast by name, in their groups
    model: RegisteredModel  # `fraud` in the mirror (tests.factories.make_fraud_model)


@pytest.fixture
def world(policies) -> World:
    """The cast in their groups, the standard production and staging policies, and `fraud` in
    the mirror: v1 in Production, v2 better on every metric, v3 failing the accuracy gate, their
    histories cached. No MLflow needed; add `no_mlflow` to make sure none is called."""
    from tests.factories import make_fraud_model

    return World(people=policies, model=make_fraud_model())


@pytest.fixture
def pending(world, requester):
    """The world's open request: fraud v2 → Production, by the requester, "Retrained."."""
    from tests.factories import make_request

    return make_request(world.model.name, requester=requester, comment="Retrained.")


@pytest.fixture
def no_mlflow(settings, monkeypatch):
    """Pages read cached history only; an accidental MLflow call fails fast and shows."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    settings.MLFLOW_UI_URL = "http://mlflow.example"


@pytest.fixture
def promoted(mlflow_client, unique_name, policies):
    """A model in MLflow and the mirror: v1 in Production, v2 and v3 better candidates."""
    from tests.mlflow_registry import register_in_mlflow

    register_in_mlflow(mlflow_client, unique_name, versions=3)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=mlflow_client)
    # What the digest job does after the sync: requests on these versions pin their content.
    content.digest_missing(client=mlflow_client)
    return unique_name


@pytest.fixture
def glass(promoted, cast):
    """`glass(on_unratified)`: the production policy lets `outsider` (oncall) break glass;
    everyone has an address, so mail can be counted. (tests/emergency/test_ratification.py has a
    `glass` of its own, which loads such policies at once.)"""
    from reviews.policies.loading import policies_load
    from tests.policy_files import break_glass_policies

    for user in cast.values():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])

    def load(on_unratified: str = "revert") -> str:
        policies_load(text=break_glass_policies(on_unratified))
        return promoted

    return load


# -- RQ: queues emptied per test, jobs run in the test process -----------------------------------


@pytest.fixture
def rq_queue(redis_url):
    """`rq_queue(name)`: that django-rq queue, emptied of jobs and of its registries' entries.

    Only the queues a test asks for are emptied (never FLUSHDB): other suites may be using the
    same Redis database at the same time.
    """
    import django_rq

    def get(name: str):
        queue = django_rq.get_queue(name)
        queue.empty()
        registries = (
            queue.started_job_registry,
            queue.finished_job_registry,
            queue.failed_job_registry,
            queue.deferred_job_registry,
            queue.scheduled_job_registry,
            queue.canceled_job_registry,
        )
        queue.connection.delete(*(registry.key for registry in registries))
        return queue

    return get


@pytest.fixture
def simple_worker():
    """`simple_worker(*queues, max_jobs=None)` runs their queued jobs in this process.

    A forking worker could not see the test's database (its transaction is not committed). The
    run is a burst that takes no commands, so it subscribes to none: RQ's listener thread is
    what an unsubscribe waits on without a limit with some Redis clients (redis-py 8.2, see
    rq/rq#1613), and a test must never hang on it.
    """
    from tests.processes import BurstWorker

    def work(*queues, max_jobs: int | None = None) -> None:
        BurstWorker(list(queues), connection=queues[0].connection).work(
            burst=True, max_jobs=max_jobs
        )

    return work


@pytest.fixture
def workers(tmp_path, rq_queue):
    """Real worker processes on the test database (tests.processes.Workers), every one stopped
    within a bounded time when the test ends; their logs are printed then. Each of Quorum's
    queues starts empty. Needs PostgreSQL (skips on SQLite, which no second process can share
    with the test)."""
    from tests.processes import Workers

    for name in settings.QUORUM_QUEUES:  # nothing left over from other tests runs here
        rq_queue(name)
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed():` runs what waits for the commit (the enqueues) when the block ends."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def run_transition(committed, simple_worker):
    """`run_transition(request)`: its transition job, queued afresh and run by a worker in this
    process; what the job leaves for after the commit (mail, webhooks, the sync) is enqueued."""
    import django_rq

    from reviews.execution import jobs

    def run(request) -> None:
        # Request ids restart with each test database, and a finished job of an earlier run with
        # the same id may still be in Redis: replace it, as an admin's retry does.
        jobs.enqueue_transition(request.pk, replace=True)
        with committed():
            simple_worker(django_rq.get_queue(jobs.QUEUE))

    return run


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
    env = {"QUORUM_GUARD_AUTH": auth, "QUORUM_GUARD_LOCK_DIR": str(store / "locks"), **settings}
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
    guarded = GuardedMlflow(auth=auth, server=server)
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
    these further QUORUM_GUARD_* settings, started when first asked for."""
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


# -- transitions: a promoted model, approved requests and the queues their jobs wait in ----------


@pytest.fixture
def quorum_queues(rq_queue, settings):
    """Every queue of Quorum's by name, emptied: for tests of what looks across all of them (the
    reconciler), which a job an earlier test left in another queue would otherwise disturb."""
    return {name: rq_queue(name) for name in settings.QUORUM_QUEUES}


@pytest.fixture
def transitions(rq_queue, settings):
    """The transitions queue; a failed transition is retried twice at once."""
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = [0, 0]  # three attempts, no waiting
    settings.QUORUM_TRANSITION_RETRY_WINDOW = 0
    return rq_queue(jobs.QUEUE)


@pytest.fixture
def syncs(rq_queue):
    """The sync queue, where a transition's follow-up sync waits."""
    return rq_queue(SYNC_QUEUE)


@pytest.fixture
def approved(promoted, requester, lead, scientist1, scientist2, django_capture_on_commit_callbacks):
    """`approved(version, target)`: a request of `promoted` with the production quorum cast,
    its transition job queued (not run)."""

    def make(version: int, target: str = "Production"):
        request = opening.request_create(
            model=promoted, version=version, target=target, requester=requester
        )
        approve_all(
            request, lead, scientist1, scientist2, capture=django_capture_on_commit_callbacks
        )
        return request

    return make


@pytest.fixture
def unreachable_mlflow(settings, monkeypatch):
    """`down()` points the jobs at a port where no MLflow answers; `up()` points them back."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast while it is down
    reachable = settings.MLFLOW_TRACKING_URI

    def down() -> None:
        settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{free_port()}"

    def up() -> None:
        settings.MLFLOW_TRACKING_URI = reachable

    return SimpleNamespace(down=down, up=up)


@pytest.fixture
def sign_in(live_server):
    """`sign_in(username, width=, height=)`: a signed-in browser Session of its own (Chromium
    through Playwright, tests/browser.py) on the live server."""
    from tests.browser import Session, chromium

    sessions: list[Session] = []
    with chromium() as browser:

        def open_session(username: str, **viewport) -> Session:
            sessions.append(Session(browser, live_server, username, **viewport))
            return sessions[-1]

        try:
            yield open_session
        finally:
            # Closed contexts drop their kept-alive connections, and the server's threads with them.
            for session in sessions:
                session.context.close()


@pytest.fixture
def key_file(tmp_path) -> Path:
    """Quorum's current public key, as PEM."""
    path = tmp_path / "quorum-public.pem"
    path.write_text(proof.public_key_pem(proof_keys.signer().public_key))
    return path
