"""Fixtures for the real services the tests talk to (an `mlflow server`, Redis and the database),
the cast, and the world most review tests start from.

The MLflow server is started once per session on a free port with a temporary SQLite store. Tests
that change MLflow use model names of their own (`unique_name`), so they never see each other's
changes even though they share the server.

Plain helpers live in modules of their own (factories.py, waiting.py, pages.py, browser.py,
processes.py, concurrency.py); no test module imports from another test module.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.test import override_settings

from quorum.localservices import free_port, redis_answers, start_mlflow_server
from registry.mlflow_client import RegistryClient

if TYPE_CHECKING:
    from registry.models import RegisteredModel


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
    from registry.sync import sync_registry
    from tests.factories import register_in_mlflow

    register_in_mlflow(mlflow_client, unique_name, versions=3)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=mlflow_client)
    return unique_name


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


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed():` runs what waits for the commit (the enqueues) when the block ends."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def run_transition(committed, simple_worker):
    """`run_transition(request)`: its transition job, queued afresh and run by a worker in this
    process; what the job leaves for after the commit (mail, webhooks, the sync) is enqueued."""
    import django_rq

    from reviews import jobs

    def run(request) -> None:
        # Request ids restart with each test database, and a finished job of an earlier run with
        # the same id may still be in Redis: replace it, as an admin's retry does.
        jobs.enqueue_transition(request.pk, replace=True)
        with committed():
            simple_worker(django_rq.get_queue(jobs.QUEUE))

    return run
