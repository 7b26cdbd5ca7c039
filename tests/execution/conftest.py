"""Fixtures of the execution tests: a promoted model whose policy reverts out-of-band moves, and
a sync whose after-commit work runs."""

from __future__ import annotations

import pytest

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
