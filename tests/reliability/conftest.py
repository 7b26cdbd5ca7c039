"""What the reliability tests share beyond tests/conftest.py (whose `workers` fixture starts
the worker processes): a private MLflow server, and the permission tests' five roles with their
API tokens (the audit check each test ends with is in checks.py).

These tests run real processes (workers, MLflow, Redis) against committed data, so they use
transactional tests on PostgreSQL and skip with the reason on SQLite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from quorum.localservices import MlflowServer, free_port, start_mlflow_server
from registry.mlflow_client import RegistryClient
from reviews.api.auth import token_create


class PrivateMlflow:
    """An `mlflow server` on a store and a port of its own, which a test may stop and start
    again (on the same port, with what the store held)."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.server: MlflowServer | None = None

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.process.poll() is None

    def start(self) -> PrivateMlflow:
        port = int(self.url.rsplit(":", 1)[1])
        self.server = start_mlflow_server(self.store_dir, port=port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="package")
def private_mlflow_of_this_process(tmp_path_factory):
    """One private MLflow for the tests here that need one: the suite runs them one after
    another in one process (tests/parallel.py `shared_server`), which starts it once instead of
    once a test."""
    mlflow = PrivateMlflow(tmp_path_factory.mktemp("private-mlflow"))
    yield mlflow
    mlflow.stop()


@pytest.fixture
def private_mlflow(private_mlflow_of_this_process, settings):
    """An MLflow server no other test uses while this one runs, which the test may stop and
    start again on its port. It starts as a server of the test's own would: running (started
    again when the test before left it stopped) and with no registered model."""
    mlflow = private_mlflow_of_this_process
    if not mlflow.running:
        mlflow.start()
    client = RegistryClient(mlflow.url)
    for model in client.list_models():  # what the tests before registered
        client.delete_model(model.name)
    settings.MLFLOW_TRACKING_URI = mlflow.url
    return mlflow


@pytest.fixture
def people(policies):
    """The five roles, each with an API token; the approver is the ml-lead, staff an admin in
    no approver group."""
    users = {
        "outsider": policies["outsider"],
        "requester": policies["requester"],
        "approver": policies["lead"],
        "staff": policies["admin"],
    }
    return {role: (user, token_create(user=user)[1]) for role, user in users.items()}
