"""Fixtures for the real services the tests talk to: an `mlflow server`, Redis and the database.

The MLflow server is started once per session on a free port with a temporary SQLite store. Tests
that change MLflow use model names of their own (`unique_name`), so they never see each other's
changes even though they share the server.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from quorum.localservices import free_port, redis_answers, start_mlflow_server
from registry.mlflow_client import RegistryClient


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
