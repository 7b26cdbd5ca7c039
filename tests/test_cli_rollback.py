"""`quorum rollback` and `quorum request --break-glass` end to end: a live Quorum, a real
`mlflow server`, a real worker process, the CLI as a subprocess with its exit codes."""

from __future__ import annotations

import pytest

from registry.sync import sync_registry
from reviews.policies import policies_load
from tests.conftest import STANDARD_POLICIES
from tests.test_cli import quorum, worker  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)

POLICIES = STANDARD_POLICIES.replace(
    "  data-science: [scientist1, scientist2, scientist3]\n",
    "  data-science: [scientist1, scientist2, scientist3]\n  oncall: [outsider]\n",
).replace(
    "    archive_existing: true\n",
    "    archive_existing: true\n"
    "    rollback: {require: [{group: ml-leads, approvals: 1}]}\n"
    "    break_glass: {groups: [oncall], ratify_within: 24h, on_unratified: alert}\n",
)


@pytest.fixture
def replaced(quorum, mlflow_client):  # noqa: F811
    """v1 held Production; v3 took it over in MLflow directly, archiving v1."""
    policies_load(text=POLICIES)
    mlflow_client.transition_stage(quorum.model, 3, "Production", archive_existing=True)
    sync_registry(model=quorum.model, client=mlflow_client)
    return quorum


def test_rollback_wait_exits_0_once_the_previous_holder_is_back(replaced, worker, mlflow_client):  # noqa: F811
    voters = replaced.votes_in_a_thread(("lead", "approve", "v3 misbehaves"))
    result = replaced.cli(
        "rollback", replaced.model, "--target", "Production", "--wait", "--timeout", "90s",
        "--poll", "0.3",
    )  # fmt: skip
    voters.join(5)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].endswith(
        f"{replaced.model} version 1 -> Production (rollback)"
    )
    assert mlflow_client.get_version(replaced.model, 1).stage == "Production"
    assert mlflow_client.get_version(replaced.model, 3).stage == "Archived"


def test_rollback_to_a_version_that_never_held_the_target_exits_2(replaced):
    result = replaced.cli("rollback", replaced.model, "--target", "Production", "--to", "2")
    assert result.returncode == 2
    assert "refused (nothing_to_roll_back): v2 has not held Production" in result.stderr


def test_break_glass_needs_a_reason_and_moves_at_once(replaced, worker, mlflow_client):  # noqa: F811
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
