"""`POST /api/v1/policies/test` and `quorum policy test`: the server checks a cases file against a
policy file it is sent, storing nothing; the CLI (a subprocess against a live server, as in CI)
exits 0 when every case passes, 1 naming each failing case, 2 for a malformed file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reviews.api.auth import token_create
from reviews.models import ApprovalPolicy, TransitionRequest
from tests.pages import Api, refused

ROOT = Path(__file__).resolve().parent.parent.parent
POLICIES = (ROOT / "docs" / "policies.example.yaml").read_text()
CASES = (ROOT / "docs" / "policy-cases.example.yaml").read_text()
WRONG = CASES.replace("expect:\n      policy: archive", "expect:\n      policy: staging")


@pytest.mark.django_db
def test_the_example_cases_pass(client, requester):
    response = Api(client, requester).post("/policies/test", {"policies": POLICIES, "cases": CASES})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["passed"], body["problems"], len(body["cases"])) == (True, [], 9)
    assert (ApprovalPolicy.objects.count(), TransitionRequest.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_a_failing_case_and_a_malformed_file_are_answered_200_with_what_is_wrong(client, requester):
    api = Api(client, requester)

    failing = api.post("/policies/test", {"policies": POLICIES, "cases": WRONG}).json()
    malformed = api.post("/policies/test", {"policies": "policies: 3\n", "cases": CASES}).json()

    assert failing["passed"] is False
    assert [c["differences"] for c in failing["cases"] if not c["passed"]] == [
        ["policy: expected 'staging', got 'archive'"]
    ]
    assert malformed == {
        "passed": False,
        "problems": [
            {"file": "policies", "place": "policies", "message": "Input should be a valid list"}
        ],
        "cases": [],
    }


@pytest.mark.django_db
def test_a_body_without_the_files_or_a_token_is_refused(client, requester):
    assert "cases" in refused(
        Api(client, requester).post("/policies/test", {"policies": POLICIES}),
        400,
        "invalid_request",
    )
    assert client.post("/api/v1/policies/test", {}).status_code == 401


def quorum_cli(url: str, token: str, cwd: Path, cases: str) -> subprocess.CompletedProcess:
    (cwd / "cases.yaml").write_text(cases)
    (cwd / "policies.yaml").write_text(POLICIES)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "QUORUM_URL": url}
    env["QUORUM_TOKEN"] = token
    command = [sys.executable, "-m", "quorum_cli", "policy", "test", "cases.yaml"]
    return subprocess.run(
        [*command, "--policies", "policies.yaml"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_the_cli_exits_0_1_and_2(live_server, requester, tmp_path):
    token = token_create(user=requester)[1]

    passing = quorum_cli(live_server.url, token, tmp_path, CASES)
    failing = quorum_cli(live_server.url, token, tmp_path, WRONG)
    malformed = quorum_cli(live_server.url, token, tmp_path, "cases:\n  - name: x\n")

    assert passing.returncode == 0, passing.stderr
    assert "9 passed, 0 failed" in passing.stdout
    assert failing.returncode == 1, failing.stderr
    assert "FAIL  archiving needs one lead: policy: expected 'staging', got 'archive'" in (
        failing.stdout
    )
    assert malformed.returncode == 2
    assert "cases.yaml: cases[0].model: Field required" in malformed.stdout
