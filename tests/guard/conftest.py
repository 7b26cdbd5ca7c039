"""Fixtures of the guard tests beyond tests/conftest.py (whose `guarded_mlflow_servers` starts
the guarded MLflow servers)."""

from __future__ import annotations

import pytest


@pytest.fixture
def token_guard(guarded_mlflow_servers):
    """The session's guarded MLflow that knows Quorum by its service token."""
    return guarded_mlflow_servers("token")
