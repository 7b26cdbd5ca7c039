"""What the reliability tests share beyond tests/conftest.py (whose `workers` fixture starts
the worker processes): a private MLflow server (the audit check each test ends with is in
checks.py).

These tests run real processes (workers, MLflow, Redis) against committed data, so they use
transactional tests on PostgreSQL and skip with the reason on SQLite.
"""

from __future__ import annotations

import pytest

from quorum.localservices import free_port, start_mlflow_server


@pytest.fixture
def private_mlflow(tmp_path, settings):
    """An MLflow server of this test's own, which the test may stop and restart on its port."""
    server = start_mlflow_server(tmp_path / "mlflow", port=free_port())
    settings.MLFLOW_TRACKING_URI = server.url
    servers = [server]
    yield servers
    for each in servers:
        each.stop()
