"""`GET /api/v1/policies/explain` and `quorum policy explain` against the example policies
(docs/policies.example.yaml) and a real `mlflow server` whose versions carry their evidence.

The explanation is computed by the functions that open a request: a request opened afterwards
stores exactly the requirements and gate results it announced, and explaining creates nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from registry import evidence
from registry.mlflow_client import RegistryClient
from registry.sync import sync_registry
from reviews.api.auth import token_create
from reviews.decisions import opening
from reviews.models import AuditEvent, TransitionRequest
from reviews.policies.loading import policies_load
from tests.mlflow_registry import register_sklearn_version

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = {"age": "int64", "income": "int64", "city": "object"}


@pytest.fixture(scope="module")
def explained_in_mlflow(mlflow_server):
    """A model in MLflow, registered once for the module (explaining only reads it): v1 in
    Production, v2 without the `city` column (its signature breaks v1's callers), v3 like v1.
    Logging a scikit-learn model is seconds of work for the test and MLflow each."""
    client = RegistryClient(mlflow_server.url)
    name = f"policy-explain-{uuid.uuid4().hex[:6]}"
    register_sklearn_version(client, name, columns=COLUMNS)
    register_sklearn_version(client, name, columns={"age": "int64"})
    register_sklearn_version(client, name, columns=COLUMNS)
    client.transition_stage(name, 1, "Production")
    yield name
    client.delete_model(name)


@pytest.fixture
def explained(explained_in_mlflow, mlflow_client):
    """The example policies, their people, and the model mirrored with its evidence."""
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"]:
        User.objects.create_user(name)
    policies_load(text=(Path(settings.BASE_DIR) / "docs" / "policies.example.yaml").read_text())
    sync_registry(model=explained_in_mlflow, client=mlflow_client)
    evidence.fetch_missing(client=mlflow_client)
    return explained_in_mlflow


def explain(client, user, **params):
    token = token_create(user=User.objects.get(username=user))[1]
    return client.get(
        "/api/v1/policies/explain", params, headers={"Authorization": f"Bearer {token}"}
    )


def test_a_breaking_signature_is_explained_as_the_escalation_that_applies(client, explained):
    response = explain(client, "erin", model=explained, version=2, target="Production")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["policy"] == "production"
    assert "matches it with the glob '*'" in body["policy_reason"]
    assert body["baseline"] == 1
    assert body["policy_require"] == [
        {"group": "ml-leads", "approvals": 1},
        {"group": "data-science", "approvals": 2},
    ]
    assert [rule["when"] for rule in body["escalation"]] == ["signature_breaking"]
    assert "column `city` removed" in body["escalation"][0]["reason"]
    assert body["require"] == [
        {"group": "ml-leads", "approvals": 1},
        {"group": "data-science", "approvals": 3},
    ]
    verdicts = {gate["metric"]: gate["verdict"] for gate in body["gates"]}
    assert verdicts == {"accuracy": "passed", "f1": "failed"}  # the run never logged f1
    assert body["outcome"] == "rejected"
    assert (body["may_request"], body["requesters"]) == (True, [])
    assert body["rollback"]["available"] is False
    assert body["rollback"]["require"] == [{"group": "ml-leads", "approvals": 1}]
    assert body["break_glass"] == {
        "available": True,
        "groups": ["ml-leads"],
        "ratify_within": "1d",
        "on_unratified": "revert",
        "reason": "members of ml-leads may move a version at once, ratified by the policy's "
        "quorum within 1d",
    }


def test_an_unchanged_candidate_takes_the_fast_path(client, explained):
    body = explain(client, "erin", model=explained, version=3, target="Production").json()

    assert [rule["when"] for rule in body["escalation"]] == ["no_change"]
    assert body["require"] == [
        {"group": "ml-leads", "approvals": 1},
        {"group": "data-science", "approvals": 1},
    ]


def test_the_explanation_is_what_a_request_then_gets_and_explaining_creates_nothing(
    client, explained
):
    events = AuditEvent.objects.count()
    answers = {
        target: explain(client, "erin", model=explained, version=2, target=target).json()
        for target in ("Production", "Staging")
    }
    # Only the token's issuing is recorded: no request, no other event.
    assert (TransitionRequest.objects.count(), AuditEvent.objects.count()) == (0, events + 2)

    for target, body in answers.items():
        request = opening.request_create(
            model=explained, version=2, target=target, requester=User.objects.get(username="erin")
        )

        assert request.policy_snapshot["require"] == body["require"]
        assert request.policy_snapshot["escalation"]["applied"] == body["escalation"]
        assert [(g["metric"], g["passed"], g["reason"]) for g in request.gate_results] == [
            (g["metric"], g["passed"], g["reason"]) for g in body["gates"]
        ]
    production, staging = answers["Production"], answers["Staging"]
    assert production["outcome"] == "rejected" and production["escalation"]
    assert staging["outcome"] == "needs_sign_off" and staging["escalation"] == []
    decisions = dict(TransitionRequest.objects.values_list("target", "decision"))
    assert decisions == {"Production": "rejected", "Staging": "pending"}


def test_a_requester_outside_the_policys_groups_is_told_so(client, explained):
    body = explain(client, "erin", model=explained, version=2, target="Archived").json()

    assert body["policy"] == "archive" and body["may_request"] is False
    assert "Only members of ml-leads or data-science" in body["request_refusal"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"version": 2, "target": "@nowhere"}, 422, "no_policy"),
        ({"version": 2, "target": "Prod"}, 422, "invalid_target"),
        ({"version": 9, "target": "Production"}, 404, "unknown_version"),
        ({"version": "two", "target": "Production"}, 400, "invalid_request"),
    ],
)
def test_refusals_are_the_requests_own(client, explained, params, status, code):
    response = explain(client, "erin", model=explained, **params)

    assert response.status_code == status, response.content
    assert response.json()["error"] == code


def test_explaining_needs_a_token(client, explained):
    response = client.get(
        "/api/v1/policies/explain", {"model": explained, "version": 2, "target": "Production"}
    )

    assert response.status_code == 401


def quorum_cli(url: str, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "QUORUM_URL": url,
        "QUORUM_TOKEN": token_create(user=User.objects.get(username=user))[1],
    }
    command = [sys.executable, "-m", "quorum_cli", "policy", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_explains_and_exits_0(live_server, explained):
    done = quorum_cli(live_server.url, "erin", "explain", explained, "2", "--target", "Production")

    assert done.returncode == 0, done.stderr
    assert f"{explained} version 2 -> Production: policy 'production'" in done.stdout
    assert "escalation signature_breaking: the signature breaks" in done.stdout
    assert "needs: 1 of ml-leads and 3 of data-science" in done.stdout
    assert "gate failed: the candidate's run never logged f1 (required)" in done.stdout
    assert "break glass: available: members of ml-leads" in done.stdout


def test_the_cli_exits_1_where_no_policy_covers_and_2_on_errors(live_server, explained):
    uncovered = quorum_cli(live_server.url, "erin", "explain", explained, "2", "--target", "@x")
    unknown = quorum_cli(live_server.url, "erin", "explain", "nope", "2", "--target", "Staging")

    assert uncovered.returncode == 1, uncovered.stderr
    assert "No approval policy covers" in uncovered.stderr
    assert unknown.returncode == 2
    assert "refused (unknown_model)" in unknown.stderr
