"""Fixtures of the execution tests: a promoted model whose policy reverts out-of-band moves, a
sync whose after-commit work runs, every queue of Quorum's emptied, and an MLflow the jobs cannot
reach."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from quorum.localservices import free_port
from registry.sync import sync_registry
from reviews.models import ApprovalPolicy


@pytest.fixture
def reverting(promoted, admin_user):
    """`promoted` (v1 in Production) under a production policy (Production, @champion) that
    reverts out-of-band moves; staging only flags them. The admin is staff with an address."""
    ApprovalPolicy.objects.filter(name="production").update(out_of_band="revert")
    admin_user.email = "admin@example.com"
    admin_user.save(update_fields=["email"])
    return promoted


@pytest.fixture
def sync_observes(mlflow_client, django_capture_on_commit_callbacks):
    """`sync_observes(model=None)`: a sync (incremental, or of one model), its after-commit work
    (queuing reverts) run as a commit would."""

    def run(model: str | None = None):
        with django_capture_on_commit_callbacks(execute=True):
            return sync_registry(model=model, client=mlflow_client)

    return run


@pytest.fixture
def quorum_queues(rq_queue, settings):
    """Every queue of Quorum's by name, emptied: for tests of what looks across all of them (the
    reconciler), which a job an earlier test left in another queue would otherwise disturb."""
    return {name: rq_queue(name) for name in settings.QUORUM_QUEUES}


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
