"""Fixtures for the real services the tests talk to: an `mlflow server`, Redis and the database.

The MLflow server is started once per session on a free port with a temporary SQLite store. Tests
that change MLflow use model names of their own (`unique_name`), so they never see each other's
changes even though they share the server.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import override_settings

from quorum.localservices import free_port, redis_answers, start_mlflow_server
from registry.jobs import SYNC_QUEUE
from registry.mlflow_client import RegistryClient
from registry.sync import sync_registry
from reviews import jobs, services
from tests.factories import approve_all


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """Production's PBKDF2 costs ~0.3 s a user; tests create many users and test no hashing."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` for the whole session; settings point at it while it runs."""
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


@pytest.fixture
def unique_name(request):
    """A model name no other test uses: `<test name>-<random>`."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"


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

STANDARD_POLICIES = """
groups:
  ml-leads: [lead]
  data-science: [scientist1, scientist2, scientist3]
policies:
  - name: production
    models: ["*"]
    targets: [Production, "@champion"]
    require:
      - {group: ml-leads, approvals: 1}
      - {group: data-science, approvals: 2}
    expires_after: 7d
    archive_existing: true
    gates:
      - {metric: accuracy, op: ">=", value: 0.80, kind: required}
      - {metric: f1, op: ">=", baseline_delta: -0.01, kind: required}
  - name: staging
    models: ["*"]
    targets: [Staging]
    require: [{group: data-science, approvals: 1}]
    gates:
      - {metric: accuracy, op: ">", value: 0.97, kind: auto_approve}
"""


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
    from reviews.policies import policies_load

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

    A forking worker could not see the test's database (its transaction is not committed).
    """
    from rq import SimpleWorker

    def work(*queues, max_jobs: int | None = None) -> None:
        SimpleWorker(list(queues), connection=queues[0].connection).work(
            burst=True, max_jobs=max_jobs
        )

    return work


# -- transitions: a promoted model, approved requests and the queues their jobs wait in ----------


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
def promoted(mlflow_client, unique_name, policies):
    """A model in MLflow and the mirror: v1 in Production, v2 and v3 better candidates."""
    from tests.test_sync import register

    register(mlflow_client, unique_name, versions=3)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=mlflow_client)
    return unique_name


@pytest.fixture
def approved(promoted, requester, lead, scientist1, scientist2, django_capture_on_commit_callbacks):
    """`approved(version, target)`: a request of `promoted` with the production quorum cast,
    its transition job queued (not run)."""
    def make(version: int, target: str = "Production"):
        request = services.request_create(
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
