"""The `quorum` CLI end to end: a live Quorum, a real `mlflow server`, a real RQ worker process.

The CLI runs as a subprocess with nothing but QUORUM_URL and QUORUM_TOKEN, as in a CI job. Votes
arrive through the REST API while it waits, each once the CLI has shown the state before it. The
worker is a separate process, so the test's data must be committed (`transaction=True`) and the
worker pointed at the test database.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest
import requests
from django.db import connection

from quorum.localservices import free_port
from registry.content import digest_missing
from registry.sync import sync_registry
from reviews.api.auth import token_create
from reviews.execution import jobs
from reviews.policies.loading import policies_load
from tests.factories import policies_with, register_in_mlflow
from tests.waiting import join_all, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
STAMPED = re.compile(r"^\[\d\d:\d\d:\d\d\] ")  # a state line of a waiting CLI


@pytest.fixture
def worker(workers, mlflow_server):
    """A worker process on the transitions queue, on the test database (tests.processes)."""
    return workers.start(mlflow_url=mlflow_server.url, queues=(jobs.QUEUE,))


@pytest.fixture
def quorum(live_server, settings, mlflow_client, unique_name, policies):
    """A model in MLflow and the mirror (v1 in Production), a live Quorum, and a way to run the
    CLI as any cast member."""
    settings.QUORUM_BASE_URL = live_server.url
    register_in_mlflow(mlflow_client, unique_name, versions=3)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    tokens = {name: token_create(user=user)[1] for name, user in policies.items()}
    return Quorum(live_server.url, unique_name, tokens)


class Quorum:
    def __init__(self, url: str, model: str, tokens: dict[str, str]):
        self.url, self.model, self.tokens = url, model, tokens

    def _command(self, args, user: str, url: str | None):
        """`quorum ARGS` with only QUORUM_URL/QUORUM_TOKEN set, as a CI job runs it."""
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "QUORUM_URL": url or self.url,
            "QUORUM_TOKEN": self.tokens.get(user, user),
        }
        return [sys.executable, "-m", "quorum_cli", *args], env

    def cli(self, *args: str, user: str = "requester", url: str | None = None, timeout=120):
        command, env = self._command(args, user, url)
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)

    def cli_while_voting(
        self, *args: str, votes: list[tuple[str, str, str]], user: str = "requester", timeout=120
    ) -> subprocess.CompletedProcess:
        """Runs `quorum ARGS` (a command that waits on the model's request) and casts each
        (user, decision, comment) through the API once the CLI has printed the state before it,
        so the CLI sees every step. Each vote changes the state, and the CLI prints one
        time-stamped line per state."""
        command, env = self._command(args, user, None)
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        readers = [
            threading.Thread(target=lambda s=stream, n=name: streams[n].extend(s), daemon=True)
            for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
        ]
        for reader in readers:
            reader.start()

        def printed_or_ended(states: int) -> bool:
            lines = streams["stdout"] + streams["stderr"]
            printed = sum(1 for line in lines if STAMPED.match(line))
            return printed > states or process.poll() is not None

        try:
            for number, (voter, decision, comment) in enumerate(votes):
                wait_for(
                    partial(printed_or_ended, number),
                    timeout=60,
                    message=f"the CLI to print the state before vote {number + 1}",
                )
                request_id = self.requests_of_the_model()[0]["id"]
                body = {"decision": decision, "comment": comment}
                self.api("POST", f"/requests/{request_id}/votes", voter, json=body)
            process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            for reader in readers:
                reader.join(timeout=10)
        return subprocess.CompletedProcess(
            command, process.returncode, "".join(streams["stdout"]), "".join(streams["stderr"])
        )

    def requests_of_the_model(self) -> list[dict]:
        found = self.api("GET", "/requests", "lead", params={"model": self.model})
        return found.json()["items"]

    def api(self, method: str, path: str, user: str, **kwargs):
        return requests.request(
            method,
            f"{self.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=30,
            **kwargs,
        )


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


# -- reading a request: the lines the CLI prints, from the API's answer --------------------------

PENDING = {
    "id": 7,
    "model": "fraud",
    "version": 3,
    "target": "Production",
    "decision": "pending",
    "status": "pending",
    "execution": None,
    "expires_at": "2026-11-30T10:00:00Z",
    "requirements": [{"group": "ml-leads", "needed": 1, "approvers": []}],
}


def test_a_request_past_its_deadline_ends_a_wait_as_expired_before_the_server_stores_it():
    from quorum_cli.reading import EXIT_DECLINED, outcome, state_line

    overdue = {**PENDING, "status": "expired"}

    assert outcome(PENDING) is None
    assert outcome(overdue) == EXIT_DECLINED
    assert state_line(overdue) == "expired: no decision before 2026-11-30T10:00:00Z"
    # A server without `status` is read as before.
    assert outcome({k: v for k, v in PENDING.items() if k != "status"}) is None


def test_an_approval_names_its_quorum_and_falls_back_to_the_deciding_voter():
    from quorum_cli.reading import state_line

    approved = {
        **PENDING,
        "decision": "approved",
        "execution": "queued",
        "decided_by": "carol",
        "approved_by": ["alice", "bob", "carol"],
    }

    assert state_line(approved) == "approved by alice, bob and carol: transition queued"
    older_server = {k: v for k, v in approved.items() if k != "approved_by"}
    assert state_line(older_server) == "approved by carol: transition queued"


def test_an_auto_approve_gate_that_did_not_fire_is_not_printed_as_a_failure():
    from quorum_cli.reading import gate_line

    missed = {"kind": "auto_approve", "passed": False, "reason": "accuracy 0.9100 > 0.9700"}
    failed = {"kind": "required", "passed": False, "reason": "accuracy 0.7000 >= 0.8000"}

    assert gate_line(missed) == "gate not auto-approved (needs sign-off): accuracy 0.9100 > 0.9700"
    assert gate_line({**missed, "verdict": "needs_sign_off"}) == gate_line(missed)
    assert gate_line(failed) == "gate FAILED: accuracy 0.7000 >= 0.8000"
    assert gate_line({**failed, "passed": True}).startswith("gate passed:")


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
