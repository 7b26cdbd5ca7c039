"""What the reliability tests share beyond tests/conftest.py (whose `workers` fixture starts
the worker processes): a private MLflow server, and the permission tests' five roles with their
API tokens (the audit check each test ends with is in checks.py).

These tests run real processes (workers, MLflow, Redis) against committed data, so they use
transactional tests on PostgreSQL and skip with the reason on SQLite.
"""

from __future__ import annotations

import pytest

from quorum.localservices import free_port, start_mlflow_server
from reviews.api.auth import token_create


@pytest.fixture
def private_mlflow(tmp_path, settings):
    """An MLflow server of this test's own, which the test may stop and restart on its port."""
    server = start_mlflow_server(tmp_path / "mlflow", port=free_port())
    settings.MLFLOW_TRACKING_URI = server.url
    servers = [server]
    yield servers
    for each in servers:
        each.stop()


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
