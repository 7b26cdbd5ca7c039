"""The `quorum` CLI end to end: a live Quorum, a real `mlflow server`, a real RQ worker process.

The CLI runs as a subprocess with nothing but QUORUM_URL and QUORUM_TOKEN, as in a CI job. Votes
arrive through the REST API while it waits, each once the CLI has shown the state before it. The
worker is a separate process, so the test's data must be committed (`transaction=True`) and the
worker pointed at the test database. The live Quorum and the worker are the fixtures of
tests/cli/conftest.py.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection

from quorum.localservices import free_port
from registry.sync import sync_registry
from tests.waiting import join_all

pytestmark = pytest.mark.django_db(transaction=True)


def test_request_wait_exits_0_when_approvals_arrive_and_the_version_moves(
    quorum, worker, mlflow_client
):
    result = quorum.cli_while_voting(
        "request", quorum.model, "3", "--to", "Production", "--wait", "--timeout", "90s",
        "--poll", "0.3", "--comment", "nightly retrain",
        votes=[
            ("lead", "approve", ""), ("scientist1", "approve", ""), ("scientist2", "approve", "ok")
        ],
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Request #") and lines[0].endswith(
        f"{quorum.model} version 3 -> Production"
    )
    assert lines[1].startswith(quorum.url + "/") and lines[1].endswith("/")
    progress = "\n".join(lines[2:])
    assert "pending: waiting for approvals: ml-leads 0/1, data-science 0/2" in progress
    assert "ml-leads 1/1 (lead)" in progress
    # The decision names the quorum that made it, not only the last voter.
    assert "approved by lead, scientist1 and scientist2" in progress
    assert f"done: {quorum.model} version 3 is at Production" in lines[-1]
    # One line per change: no line repeats while nothing changes.
    assert len(lines) == len(set(lines))
    assert mlflow_client.get_version(quorum.model, 3).stage == "Production"
    assert mlflow_client.get_version(quorum.model, 1).stage == "Archived"


def test_request_wait_exits_1_with_the_reason_on_a_rejection(quorum, worker, mlflow_client):
    result = quorum.cli_while_voting(
        "request", quorum.model, "3", "--to", "Production", "--wait", "--poll", "0.3", "--json",
        votes=[("scientist1", "reject", "f1 regressed on the holdout")],
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    final = json.loads(result.stdout)  # --json: stdout is the request alone
    assert (final["decision"], final["decided_by"]) == ("rejected", "scientist1")
    assert "rejected by scientist1: f1 regressed on the holdout" in result.stderr
    assert mlflow_client.get_version(quorum.model, 3).stage == "None"


def test_request_wait_exits_3_on_timeout(quorum, worker):
    result = quorum.cli(
        "request", quorum.model, "2", "--to", "Production", "--wait", "--timeout", "2s",
        "--poll", "0.5",
    )  # fmt: skip

    assert result.returncode == 3, result.stdout + result.stderr
    assert "timed out after 2s" in result.stdout
    assert "pending" in result.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("url", "user", "message"),
    [
        ("http://127.0.0.1:{port}", "requester", "cannot reach Quorum"),
        ("not-a-url", "requester", "needs http:// or https://"),
        (None, "qrm_not-a-real-token", "authentication failed: The token is not valid."),
    ],
    ids=["unreachable", "malformed-url", "bad-token"],
)
def test_bad_url_or_token_exits_2_with_a_message_and_no_traceback(quorum, url, user, message):
    url = url and url.format(port=free_port())

    result = quorum.cli(
        "request", quorum.model, "3", "--to", "Production", "--wait", user=user, url=url
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not quorum.api("GET", "/requests", "lead").json()["items"]


def test_request_retries_until_quorum_has_synced_a_just_registered_version(quorum, mlflow_client):
    """A CI job registers a version and requests it at once; Quorum's sync catches up later."""
    run_id = mlflow_client.log_run(
        mlflow_client.experiment_id("cli-tests"),
        run_name="retrained",
        params={},
        metrics={"accuracy": 0.9, "f1": 0.9},
    )
    mlflow_client.create_version(quorum.model, source=f"runs:/{run_id}/model", run_id=run_id)

    def sync():
        try:
            sync_registry(model=quorum.model, client=mlflow_client)
        finally:
            connection.close()  # this thread's own connection

    later = threading.Timer(1.5, sync)
    later.start()

    result = quorum.cli("request", quorum.model, "4", "--to", "Staging", "--poll", "0.3")
    join_all([later], timeout=60, message="the sync that mirrors the new version")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "refused (unknown_version)" in result.stdout
    assert "waiting for Quorum to sync it from MLflow" in result.stdout
    assert result.stdout.count("waiting for Quorum") == 1
    assert "Request #" in result.stdout


def test_an_unknown_model_fails_after_the_sync_wait(quorum):
    started = time.monotonic()
    result = quorum.cli("request", "no-such-model", "1", "--to", "Staging", "--sync-wait", "1s")
    assert result.returncode == 2
    assert "refused (unknown_model)" in result.stderr
    assert 1 <= time.monotonic() - started < 30


def test_usage_errors_exit_2(quorum):
    assert quorum.cli("request", quorum.model, "3").returncode == 2  # no --to
    assert quorum.cli("wait", "1", "--timeout", "soon").returncode == 2
    assert quorum.cli("vote", "1", "maybe").returncode == 2
    refused = quorum.cli("request", quorum.model, "3", "--to", "Prod")
    assert refused.returncode == 2
    assert "refused (invalid_target)" in refused.stderr


def test_status_vote_and_wait_follow_a_request(quorum, worker):
    created = quorum.cli("request", quorum.model, "3", "--to", "Production", "--json")
    assert created.returncode == 0, created.stderr
    request_id = str(json.loads(created.stdout)["id"])

    voted = quorum.cli("vote", request_id, "approve", user="lead")
    assert voted.returncode == 0, voted.stderr
    assert "ml-leads 1/1 (lead)" in voted.stdout

    status = quorum.cli("status", request_id, "--json")
    assert status.returncode == 0
    shown = json.loads(status.stdout)
    assert shown["requirements"][0]["approvers"] == ["lead"]
    assert shown["votes"][0]["counted_for"] == "ml-leads"
    assert "gate passed: accuracy" in status.stderr
    assert "vote: lead approved (for ml-leads)" in status.stderr

    not_eligible = quorum.cli("vote", request_id, "approve", user="outsider")
    assert not_eligible.returncode == 2
    assert "refused (not_eligible)" in not_eligible.stderr

    timed_out = quorum.cli("wait", request_id, "--timeout", "1s", "--poll", "0.2")
    assert timed_out.returncode == 3

    waited = quorum.cli_while_voting(
        "wait", request_id, "--timeout", "90s", "--poll", "0.3",
        votes=[("scientist1", "approve", ""), ("scientist2", "approve", "")],
    )  # fmt: skip
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "done:" in waited.stdout.splitlines()[-1]
    assert quorum.cli("status", request_id).returncode == 0


def test_an_approver_whose_approval_went_stale_votes_again_with_the_cli(
    quorum, worker, mlflow_client
):
    """lead, the only ml-lead, approves v3; v2 is moved into Production in MLflow directly and
    synced, so the approval goes stale; lead votes again and the request goes through."""
    created = quorum.cli("request", quorum.model, "3", "--to", "Production", "--json")
    request_id = str(json.loads(created.stdout)["id"])
    assert quorum.cli("vote", request_id, "approve", user="lead").returncode == 0
    mlflow_client.transition_stage(quorum.model, 2, "Production")  # out of band
    sync_registry(model=quorum.model, client=mlflow_client)

    status = quorum.cli("status", request_id)
    assert "ml-leads 0/1" in status.stdout
    assert (
        "vote: lead approved, no longer counts: Production is now held by v2 (was v1)."
        in status.stdout
    )

    again = quorum.cli("vote", request_id, "approve", user="lead")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ml-leads 1/1 (lead)" in again.stdout
    twice = quorum.cli("vote", request_id, "approve", user="lead")
    assert twice.returncode == 2 and "refused (already_voted)" in twice.stderr
    for scientist in ("scientist1", "scientist2"):
        assert quorum.cli("vote", request_id, "approve", user=scientist).returncode == 0

    waited = quorum.cli("wait", request_id, "--timeout", "90s", "--poll", "0.3")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert mlflow_client.get_version(quorum.model, 3).stage == "Production"
    status = quorum.cli("status", request_id).stdout
    assert "vote: lead approved (for ml-leads)" in status
    assert "vote: scientist2 approved (for data-science)" in status


def test_status_prints_the_latest_comments(quorum):
    created = quorum.cli("request", quorum.model, "2", "--to", "Staging", "--json")
    request_id = json.loads(created.stdout)["id"]
    for user, body in [
        ("lead", "first"),
        ("requester", "second"),
        ("lead", "third,\nover two lines"),
        ("requester", "fourth " + "x" * 300),
    ]:
        posted = quorum.api("POST", f"/requests/{request_id}/comments", user, json={"body": body})
        assert posted.status_code == 201, posted.text
    status = quorum.cli("status", str(request_id), "--json")
    assert status.returncode == 0, status.stderr
    lines = [line for line in status.stderr.splitlines() if "comment:" in line]
    assert len(lines) == 3 and "first" not in status.stderr
    assert lines[0].startswith("  comment: requester (") and lines[0].endswith("): second")
    assert lines[1].endswith("third, over two lines")
    assert lines[2].endswith("…") and len(lines[2]) < 260
    shown = json.loads(status.stdout)
    assert [c["author"] for c in shown["latest_comments"]] == ["requester", "lead", "requester"]


def test_requesting_a_rejected_version_again_needs_an_answer(quorum):
    created = quorum.cli("request", quorum.model, "2", "--to", "Staging", "--json")
    request_id = json.loads(created.stdout)["id"]
    rejected = quorum.api(
        "POST",
        f"/requests/{request_id}/votes",
        "scientist1",
        json={"decision": "reject", "comment": "Calibration is off."},
    )
    assert rejected.status_code == 201, rejected.text
    again = quorum.cli("request", quorum.model, "2", "--to", "Staging")
    assert again.returncode == 2
    assert "refused (answer_required)" in again.stderr
    assert f"Previously rejected in #{request_id} by scientist1: 'Calibration is off.'" in (
        again.stderr
    )
    answered = quorum.cli(
        "request", quorum.model, "2", "--to", "Staging", "--answer", "Recalibrated.", "--json"
    )
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["rejection_answer"] == "Recalibrated."


def test_wait_and_status_exit_1_for_a_cancelled_request(quorum):
    created = quorum.cli("request", quorum.model, "2", "--to", "Staging", "--json")
    request_id = json.loads(created.stdout)["id"]
    quorum.api("POST", f"/requests/{request_id}/cancel", "requester")

    waited = quorum.cli("wait", str(request_id))
    assert waited.returncode == 1
    assert "cancelled by requester: Cancelled by requester" in waited.stdout
    assert quorum.cli("status", str(request_id)).returncode == 1
