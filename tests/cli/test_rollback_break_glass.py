"""`quorum rollback` and `quorum request --break-glass` end to end: a live Quorum, a real `mlflow
server`, a real RQ worker process (the fixtures of tests/cli/conftest.py); what a rollback will
take, the previous holder put back, and a break-glass move made at once."""

from __future__ import annotations

import pytest

from registry.sync import sync_registry
from reviews.policies.loading import policies_load
from tests.policy_files import policies_with

pytestmark = pytest.mark.django_db(transaction=True)


# -- rollback and break glass ----------------------------------------------------------------------


ROLLBACK_POLICIES = policies_with(
    rollback=True, break_glass="ratify_within: 24h, on_unratified: alert"
)


@pytest.fixture
def replaced(quorum, mlflow_client):
    """v1 held Production; v3 took it over in MLflow directly, archiving v1."""
    policies_load(text=ROLLBACK_POLICIES)
    mlflow_client.transition_stage(quorum.model, 3, "Production", archive_existing=True)
    sync_registry(model=quorum.model, client=mlflow_client)
    return quorum


def test_rollback_wait_exits_0_once_the_previous_holder_is_back(replaced, worker, mlflow_client):
    result = replaced.cli_while_voting(
        "rollback", replaced.model, "--target", "Production", "--wait", "--timeout", "90s",
        "--poll", "0.3", votes=[("lead", "approve", "v3 misbehaves")],
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    # First what the rollback will take, then the request it opened.
    said, opened = result.stdout.splitlines()[:2]
    assert said.startswith(f"Rollback of {replaced.model} Production to v1: needs ")
    assert opened.endswith(f"{replaced.model} version 1 -> Production (rollback)")
    assert mlflow_client.get_version(replaced.model, 1).stage == "Production"
    assert mlflow_client.get_version(replaced.model, 3).stage == "Archived"


def test_rollback_to_a_version_that_never_held_the_target_exits_2(replaced):
    result = replaced.cli("rollback", replaced.model, "--target", "Production", "--to", "2")
    assert result.returncode == 2
    assert "refused (nothing_to_roll_back): v2 has not held Production" in result.stderr


def test_break_glass_needs_a_reason_and_moves_at_once(replaced, worker, mlflow_client):
    usage = replaced.cli(
        "request", replaced.model, "2", "--to", "Production", "--break-glass", user="outsider"
    )
    assert usage.returncode == 2 and "--break-glass needs --reason" in usage.stderr

    refused = replaced.cli(
        "request", replaced.model, "2", "--to", "Production", "--break-glass", "--reason", "x",
        user="requester",
    )  # fmt: skip
    assert refused.returncode == 2 and "refused (forbidden)" in refused.stderr

    result = replaced.cli(
        "request", replaced.model, "2", "--to", "Production", "--break-glass",
        "--reason", "v3 approves every payment", "--wait", "--timeout", "60s", "--poll", "0.3",
        user="outsider",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].endswith("-> Production (break glass)")
    assert mlflow_client.get_version(replaced.model, 2).stage == "Production"


def test_rollback_says_what_it_will_take_and_preview_opens_nothing(quorum, mlflow_client):
    mlflow_client.transition_stage(quorum.model, 3, "Production")
    mlflow_client.transition_stage(quorum.model, 1, "Archived")
    sync_registry(model=quorum.model, client=mlflow_client)
    policies_load(text=policies_with(rollback=True))
    shown = quorum.cli("rollback", quorum.model, "--target", "Production", "--preview")
    assert shown.returncode == 0, shown.stderr
    assert f"Rollback of {quorum.model} Production to v1: needs 1 of ml-leads" in shown.stdout
    assert quorum.requests_of_the_model() == []
    made = quorum.cli("rollback", quorum.model, "--target", "Production")
    assert made.returncode == 0, made.stderr
    assert "needs 1 of ml-leads" in made.stdout
    [opened] = quorum.requests_of_the_model()
    assert opened["requirements"][0]["group"] == "ml-leads" and opened["version"] == 1
