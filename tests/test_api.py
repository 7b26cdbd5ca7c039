"""The REST API: every endpoint's answer, every refusal's code and status, token authentication,
the token command and admin, the schema and its docs, and schema fuzzing against a live server."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from registry.models import ModelVersion
from reviews.api.auth import token_create
from reviews.models import COMMENT_MAX, ApiToken, ApprovalPolicy, AuditEvent, TransitionRequest
from reviews.policies import set_requesters
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db

GOOD = {"accuracy": 0.91, "f1": 0.88}


@pytest.fixture
def fraud(policies):
    """fraud-detector: v1 in Production, v2 a better candidate, v3 in Staging."""
    model = make_model("fraud-detector", description="scores payments", aliases={"champion": 1})
    make_version(model, 1, stage="Production", aliases=["champion"], metrics={"f1": 0.87})
    make_version(model, 2, metrics=GOOD, params={"alpha": "0.2"})
    make_version(model, 3, stage="Staging", metrics=GOOD)
    return model


class Api:
    """The test client speaking JSON with one user's bearer token."""

    def __init__(self, client, user=None, token: str | None = None):
        self.client = client
        self.token = token if token is not None else token_create(user=user, name="test")[1]

    def _headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path, **params):
        return self.client.get("/api/v1" + path, params, headers=self._headers())

    def post(self, path, body=None, *, raw: str | None = None):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(
            "/api/v1" + path, data, content_type="application/json", headers=self._headers()
        )


@pytest.fixture
def as_user(client):
    return lambda user: Api(client, user)


def create(api, version=2, target="Production", **extra):
    return api.post(
        "/requests",
        {"model": "fraud-detector", "version": version, "target": target, **extra},
    )


def refused(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code, body
    assert body["detail"]
    return body["detail"]


# -- registry ---------------------------------------------------------------------------------


def test_models_lists_names_aliases_and_version_counts(fraud, requester, as_user):
    make_model("zz-empty")
    make_model("gone", deleted=True)

    response = as_user(requester).get("/models")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    first, second = body["items"]
    assert first == {
        "name": "fraud-detector",
        "description": "scores payments",
        "tags": {},
        "aliases": {"champion": 1},
        "versions": 3,
        "latest_version": 3,
    }
    assert (second["name"], second["versions"], second["latest_version"]) == ("zz-empty", 0, None)


def test_models_are_paginated(policies, requester, as_user):
    for n in range(5):
        make_model(f"m{n}")
    page = as_user(requester).get("/models", limit=2, offset=2).json()
    assert page["count"] == 5
    assert [m["name"] for m in page["items"]] == ["m2", "m3"]


def test_versions_show_stage_aliases_and_metrics_newest_first(fraud, requester, as_user):
    body = as_user(requester).get("/models/fraud-detector/versions").json()

    assert body["count"] == 3
    assert [v["version"] for v in body["items"]] == [3, 2, 1]
    v1 = body["items"][2]
    assert (v1["stage"], v1["aliases"], v1["metrics"]) == ("Production", ["champion"], {"f1": 0.87})
    assert body["items"][1]["params"] == {"alpha": "0.2"}


def test_nan_and_infinite_metrics_are_served_as_strings_and_fail_their_gates(
    fraud, requester, as_user
):
    make_version(fraud, 4, metrics={"accuracy": "NaN", "f1": "Infinity"})
    api = as_user(requester)

    versions = api.get("/models/fraud-detector/versions")
    created = create(api, version=4)

    assert versions.status_code == 200
    assert versions.json()["items"][0]["metrics"] == {"accuracy": "NaN", "f1": "Infinity"}
    assert created.status_code == 201, created.content
    body = json.loads(created.content, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert body["decision"] == "rejected"
    accuracy = next(g for g in body["gates"] if g["metric"] == "accuracy")
    assert (
        accuracy["value"] == "NaN" and accuracy["reason"] == "accuracy is NaN: not a finite number"
    )


def test_versions_of_an_unknown_model_is_404(fraud, requester, as_user):
    detail = refused(as_user(requester).get("/models/nope/versions"), 404, "unknown_model")
    assert "nope" in detail


# -- requests ---------------------------------------------------------------------------------


def test_create_request_answers_201_with_the_request(fraud, requester, as_user, settings):
    settings.QUORUM_BASE_URL = "https://quorum.example.com"

    response = create(as_user(requester), comment="retrained on March data")

    assert response.status_code == 201, response.content
    body = response.json()
    request = TransitionRequest.objects.get()
    assert body["id"] == request.pk
    assert (body["model"], body["version"], body["target"]) == ("fraud-detector", 2, "Production")
    assert (body["requester"], body["comment"]) == ("requester", "retrained on March data")
    assert (body["decision"], body["execution"], body["decided_by"]) == ("pending", None, None)
    assert body["requirements"] == [
        {"group": "ml-leads", "needed": 1, "approvers": []},
        {"group": "data-science", "needed": 2, "approvers": []},
    ]
    assert [(g["metric"], g["passed"]) for g in body["gates"]] == [
        ("accuracy", True),
        ("f1", True),
    ]
    assert body["url"].startswith("https://quorum.example.com/")
    assert body["url"].endswith(f"/{request.pk}/")
    created = AuditEvent.objects.get(action="request.created")
    assert (created.actor, created.request_id) == ("requester", request.pk)


def test_a_failing_required_gate_comes_back_rejected_with_the_reason(fraud, requester, as_user):
    make_version(fraud, 4, metrics={"accuracy": 0.5, "f1": 0.9})

    body = create(as_user(requester), version=4).json()

    assert body["decision"] == "rejected"
    assert "accuracy" in body["decision_reason"]


@pytest.mark.parametrize(
    ("raw", "code", "mentions"),
    [
        ('{"model": "fraud-detector", "version": 2,', "malformed_request", "parse"),
        ("[1, 2]", "invalid_request", "body: Input should be a valid dictionary"),
        ('{"version": 2, "target": "Production"}', "invalid_request", "model"),
        ('{"model": "fraud-detector", "target": "Production"}', "invalid_request", "version"),
        (
            '{"model": "fraud-detector", "version": "two", "target": "Staging"}',
            "invalid_request",
            "version",
        ),  # noqa: E501
        ('{"model": "fraud-detector", "version": 2, "target": null}', "invalid_request", "target"),
        ('{"model": "fraud\\u0000", "version": 2, "target": "Staging"}', "invalid_request", "NUL"),
    ],
    ids=["broken-json", "not-an-object", "no-model", "no-version", "bad-version", "null", "nul"],
)
def test_malformed_bodies_are_400_and_create_nothing(
    fraud, requester, as_user, raw, code, mentions
):
    detail = refused(as_user(requester).post("/requests", raw=raw), 400, code)
    assert mentions in detail
    assert not TransitionRequest.objects.exists()


@pytest.mark.parametrize(
    "version",
    [True, False, 2.0, 2.5, "2.0", " 2", "+2", "-2", "٢", "", None, [2], {"n": 2}],
    ids=repr,
)
def test_a_version_must_be_a_whole_number(fraud, requester, as_user, version):
    detail = refused(create(as_user(requester), version=version), 400, "invalid_request")
    assert detail.startswith("version: ")
    assert not TransitionRequest.objects.exists()


def test_a_version_written_as_digits_is_taken_as_the_cli_sends_it(fraud, requester, as_user):
    response = create(as_user(requester), version="2")

    assert response.status_code == 201, response.content
    assert response.json()["version"] == 2


def test_a_misspelt_field_is_refused_not_dropped(fraud, requester, lead, as_user):
    detail = refused(create(as_user(requester), coment="retrained"), 400, "invalid_request")
    assert detail == "coment: unknown field"
    assert not TransitionRequest.objects.exists()

    request_id = create(as_user(requester)).json()["id"]
    response = as_user(lead).post(f"/requests/{request_id}/votes", {"decision": "approve", "x": 1})
    assert refused(response, 400, "invalid_request") == "x: unknown field"
    assert not TransitionRequest.objects.get().votes.exists()


def test_comments_have_the_forms_limit(fraud, requester, scientist1, as_user):
    api = as_user(requester)
    detail = refused(create(api, comment="x" * (COMMENT_MAX + 1)), 400, "invalid_request")
    assert detail == "comment: String should have at most 4000 characters"
    assert not TransitionRequest.objects.exists()

    created = create(api, comment="x" * COMMENT_MAX)
    assert created.status_code == 201 and len(created.json()["comment"]) == COMMENT_MAX

    voter = as_user(scientist1)
    votes = f"/requests/{created.json()['id']}/votes"
    long_no = {"decision": "reject", "comment": "y" * (COMMENT_MAX + 1)}
    assert refused(voter.post(votes, long_no), 400, "invalid_request").startswith("comment: ")
    request = TransitionRequest.objects.get()
    assert request.decision == "pending" and not request.votes.exists()


def test_the_longest_comment_fits_the_body_limit_however_it_is_escaped(fraud, requester, client):
    # Every character outside the BMP, sent as a \ud83d\ude00 pair: the most bytes per character.
    api = Api(client, requester)
    comment = "\N{GRINNING FACE}" * COMMENT_MAX
    raw = json.dumps(
        {"model": "fraud-detector", "version": 2, "target": "Production", "comment": comment}
    )
    assert len(raw) > COMMENT_MAX * 12

    response = api.post("/requests", raw=raw)

    assert response.status_code == 201, response.content
    assert TransitionRequest.objects.get().comment == comment


def test_a_body_over_the_api_limit_is_413_unread_and_nothing_is_logged_whole(
    fraud, requester, as_user, caplog
):
    huge = "x" * (1024 * 1024)
    raw = json.dumps(
        {"model": "fraud-detector", "version": 2, "target": "Production", "comment": huge}
    )

    detail = refused(as_user(requester).post("/requests", raw=raw), 413, "payload_too_large")

    assert "65,536 bytes" in detail
    assert not TransitionRequest.objects.exists()
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)


@pytest.mark.parametrize("size", [64 * 1024 + 1, 3 * 1024 * 1024], ids=["over-64k", "over-django"])
def test_oversized_bodies_are_413_even_without_a_token(fraud, client, size):
    response = client.post("/api/v1/requests", "x" * size, content_type="application/json")

    refused(response, 413, "payload_too_large")


def test_djangos_own_body_limit_answers_413_in_the_apis_shape(fraud, requester, as_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = create(as_user(requester), comment="x" * 2000)

    assert "1,000 bytes" in refused(response, 413, "payload_too_large")
    assert not TransitionRequest.objects.exists()


def test_json_nested_too_deeply_is_400_not_a_server_error(fraud, requester, as_user):
    response = as_user(requester).post("/requests", raw="[" * 20_000 + "]" * 20_000)

    refused(response, 400, "malformed_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/nope"),
        ("post", "/api/v1/nope"),
        ("get", "/api/v1/requests/"),
        ("get", "/api/v1/models/fraud-detector"),
        ("get", "/api/v2/requests"),
        ("get", "/api/"),
    ],
)
def test_unknown_api_routes_are_404_in_json(fraud, requester, client, method, path):
    headers = {"Authorization": f"Bearer {token_create(user=requester)[1]}"}

    response = getattr(client, method)(path, headers=headers)

    assert response["Content-Type"].startswith("application/json")
    assert "/api/v1/docs" in refused(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/requests/1/votes", "POST"),
        ("delete", "/requests/1", "GET"),
        ("put", "/models", "GET"),
    ],
)
def test_a_method_a_route_lacks_is_405_in_json(fraud, requester, client, method, path, allowed):
    headers = {"Authorization": f"Bearer {token_create(user=requester)[1]}"}

    response = getattr(client, method)("/api/v1" + path, headers=headers)

    assert allowed in refused(response, 405, "method_not_allowed")
    assert response["Allow"] == allowed


def test_pages_outside_the_api_keep_their_html_errors(client):
    response = client.get("/nope/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "nope", "version": 1, "target": "Production"}, 404, "unknown_model"),
        ({"model": "fraud-detector", "version": 9, "target": "Production"}, 404, "unknown_version"),
        (
            {"model": "fraud-detector", "version": 1, "target": "Production"},
            409,
            "already_at_target",
        ),
        ({"model": "fraud-detector", "version": 2, "target": "Archived"}, 422, "no_policy"),
        ({"model": "fraud-detector", "version": 2, "target": "Prod"}, 422, "invalid_target"),
        (
            {"model": "fraud-detector", "version": 10**20, "target": "Staging"},
            404,
            "unknown_version",
        ),
        ({"model": "fraud-detector", "version": -2, "target": "Staging"}, 404, "unknown_version"),
        (
            {"model": "fraud-detector", "version": 2, "target": "@" + "a" * 300},
            422,
            "invalid_target",
        ),
    ],
)
def test_refusals_of_the_engine_keep_their_status_and_code(
    fraud, requester, as_user, body, status, code
):
    refused(as_user(requester).post("/requests", body), status, code)
    assert not TransitionRequest.objects.exists()


def test_a_second_open_request_for_the_same_target_is_409(fraud, requester, as_user):
    api = as_user(requester)
    first = create(api).json()
    detail = refused(create(api), 409, "duplicate_request")
    assert f"#{first['id']}" in detail
    assert TransitionRequest.objects.count() == 1


def test_a_requester_outside_the_policys_requester_groups_is_403(fraud, requester, as_user):
    set_requesters(
        ApprovalPolicy.objects.get(name="production"), [Group.objects.get(name="ml-leads")]
    )

    detail = refused(create(as_user(requester)), 403, "not_a_requester")

    assert "Only members of ml-leads may request Production" in detail
    assert not TransitionRequest.objects.exists()


def test_get_request_and_unknown_ids(fraud, requester, outsider, as_user):
    created = create(as_user(requester)).json()
    api = as_user(outsider)  # anyone signed in may follow a request, as in the browser

    assert api.get(f"/requests/{created['id']}").json() == created
    refused(api.get(f"/requests/{created['id'] + 1000}"), 404, "not_found")
    refused(api.get("/requests/abc"), 400, "invalid_request")
    refused(api.get(f"/requests/{10**30}"), 404, "not_found")
    refused(api.get("/models/a%00b/versions"), 400, "invalid_request")
    refused(api.get("/requests", model="a\x00b"), 400, "invalid_request")


def test_list_requests_filters_by_state_and_model(fraud, requester, as_user):
    other = make_model("churn")
    make_version(other, 1, metrics=GOOD)
    api = as_user(requester)
    pending = create(api).json()
    cancelled = create(api, version=3, target="@champion").json()
    api.post(f"/requests/{cancelled['id']}/cancel")
    churn = api.post("/requests", {"model": "churn", "version": 1, "target": "Production"}).json()

    def ids(**params):
        body = api.get("/requests", **params).json()
        assert body["count"] == len(body["items"])
        return [r["id"] for r in body["items"]]

    assert ids() == [churn["id"], cancelled["id"], pending["id"]]
    assert ids(state="pending") == [churn["id"], pending["id"]]
    assert ids(state="pending", model="fraud-detector") == [pending["id"]]
    assert ids(state="cancelled") == [cancelled["id"]]
    assert ids(model="nope") == []
    refused(api.get("/requests", state="open-ish"), 400, "invalid_request")
    refused(api.get("/requests", limit=0), 400, "invalid_request")


def test_list_requests_costs_the_same_queries_for_3_or_30(
    fraud, requester, lead, scientist1, as_user, django_assert_max_num_queries
):
    api = as_user(requester)
    versions = [make_version(fraud, metrics=GOOD) for _ in range(30)]

    def request_and_vote(version):
        body = create(api, version=version.version).json()
        as_user(lead).post(f"/requests/{body['id']}/votes", {"decision": "approve"})

    def listed(**params) -> int:
        # auth + last-used update + count + page + votes with their users
        with django_assert_max_num_queries(6):
            return len(api.get("/requests", limit=50, **params).json()["items"])

    for version in versions[:3]:
        request_and_vote(version)
    assert listed() == 3 and listed(fields="full") == 3
    for version in versions[3:]:
        request_and_vote(version)
    assert listed() == 30 and listed(fields="full") == 30


SUMMARY_FIELDS = {
    "id",
    "status",
    "approved_by",
    "model",
    "version",
    "target",
    "requester",
    "decision",
    "execution",
    "requirements",
    "created_at",
    "expires_at",
    "url",
}


def test_list_items_are_summaries_unless_fields_full_asks_for_what_get_answers(
    fraud, requester, lead, scientist1, as_user
):
    api = as_user(requester)
    created = create(api, comment="retrained").json()
    as_user(scientist1).post(f"/requests/{created['id']}/votes", {"decision": "approve"})
    detail = api.get(f"/requests/{created['id']}").json()

    summary = api.get("/requests").json()
    full = api.get("/requests", fields="full").json()

    assert summary["fields"] == "summary" and full["fields"] == "full"
    assert summary["count"] == full["count"] == 1
    assert set(summary["items"][0]) == SUMMARY_FIELDS
    assert summary["items"][0] == {key: detail[key] for key in SUMMARY_FIELDS}
    assert summary["items"][0]["requirements"] == [
        {"group": "ml-leads", "needed": 1, "approvers": []},
        {"group": "data-science", "needed": 2, "approvers": ["scientist1"]},
    ]
    assert full["items"] == [detail]
    refused(api.get("/requests", fields="everything"), 400, "invalid_request")


def test_a_list_of_requests_has_20_items_unless_the_limit_says_otherwise(fraud, requester, as_user):
    api = as_user(requester)
    for _ in range(21):
        create(api, version=make_version(fraud, metrics=GOOD).version)

    assert len(api.get("/requests").json()["items"]) == 20
    assert len(api.get("/requests", offset=20).json()["items"]) == 1
    assert len(api.get("/requests", limit=21).json()["items"]) == 21
    assert len(api.get("/models", limit=500).json()["items"]) == 1  # other lists keep theirs


def test_status_says_expired_once_the_deadline_passes_while_decision_keeps_its_meaning(
    fraud, requester, as_user
):
    api = as_user(requester)
    request_id = create(api).json()["id"]
    assert api.get(f"/requests/{request_id}").json()["status"] == "pending"
    TransitionRequest.objects.filter(pk=request_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    detail = api.get(f"/requests/{request_id}").json()
    [summary] = api.get("/requests").json()["items"]

    # Clients polling `decision` see what is stored until the reconciler expires it.
    assert (detail["decision"], detail["status"]) == ("pending", "expired")
    assert (summary["decision"], summary["status"]) == ("pending", "expired")


def test_gates_carry_their_verdict_and_an_auto_approve_miss_is_not_a_failure(
    fraud, requester, as_user
):
    body = create(as_user(requester), target="Staging").json()  # auto-approve above 0.97

    [gate] = body["gates"]
    assert (gate["kind"], gate["passed"]) == ("auto_approve", False)
    assert gate["verdict"] == "needs_sign_off"
    assert body["decision"] == "pending"


# -- votes and cancel -------------------------------------------------------------------------


def test_votes_count_and_the_last_approval_approves(
    fraud, requester, lead, scientist1, scientist2, as_user
):
    request_id = create(as_user(requester)).json()["id"]

    first = as_user(lead).post(f"/requests/{request_id}/votes", {"decision": "approve"})
    assert first.status_code == 201, first.content
    assert first.json()["requirements"][0] == {
        "group": "ml-leads",
        "needed": 1,
        "approvers": ["lead"],
    }
    as_user(scientist1).post(f"/requests/{request_id}/votes", {"decision": "approve"})
    last = as_user(scientist2).post(
        f"/requests/{request_id}/votes", {"decision": "approve", "comment": "looks good"}
    )

    body = last.json()
    assert (body["decision"], body["execution"], body["decided_by"]) == (
        "approved",
        "queued",
        "scientist2",
    )
    assert [(v["user"], v["decision"]) for v in body["votes"]] == [
        ("lead", "approve"),
        ("scientist1", "approve"),
        ("scientist2", "approve"),
    ]
    # `decided_by` stays the last voter; `approved_by` names the quorum that approved.
    assert body["status"] == "queued"
    assert body["approved_by"] == ["lead", "scientist1", "scientist2"]
    assert AuditEvent.objects.filter(action="vote.cast").count() == 3


def test_a_person_in_two_groups_counts_once_and_each_vote_says_for_which(
    fraud, requester, lead, scientist1, scientist2, as_user
):
    Group.objects.get(name="data-science").user_set.add(lead)
    request_id = create(as_user(requester)).json()["id"]
    as_user(lead).post(f"/requests/{request_id}/votes", {"decision": "approve"})

    body = as_user(scientist1).post(f"/requests/{request_id}/votes", {"decision": "approve"})

    shown = body.json()
    assert shown["decision"] == "pending"  # two people, and the policy needs three
    assert shown["requirements"] == [
        {"group": "ml-leads", "needed": 1, "approvers": ["lead"]},
        {"group": "data-science", "needed": 2, "approvers": ["scientist1"]},
    ]
    assert [(v["user"], v["groups"], v["counted_for"]) for v in shown["votes"]] == [
        ("lead", ["ml-leads", "data-science"], "ml-leads"),
        ("scientist1", ["data-science"], "data-science"),
    ]
    last = as_user(scientist2).post(f"/requests/{request_id}/votes", {"decision": "approve"})
    assert last.json()["decision"] == "approved"
    assert last.json()["decision_reason"].startswith("Quorum reached by 3 different people")


def test_a_rejection_with_a_comment_rejects(fraud, requester, scientist1, as_user):
    request_id = create(as_user(requester)).json()["id"]
    body = as_user(scientist1).post(
        f"/requests/{request_id}/votes", {"decision": "reject", "comment": "f1 is flat"}
    )
    assert body.status_code == 201
    assert (body.json()["decision"], body.json()["decision_reason"]) == ("rejected", "f1 is flat")


def test_vote_refusals(fraud, requester, lead, scientist1, outsider, as_user):
    request_id = create(as_user(requester)).json()["id"]
    url = f"/requests/{request_id}/votes"

    refused(as_user(scientist1).post(url, {"decision": "reject"}), 400, "comment_required")
    refused(as_user(scientist1).post(url, {"decision": "maybe"}), 400, "invalid_request")
    refused(as_user(outsider).post(url, {"decision": "approve"}), 403, "not_eligible")
    refused(as_user(requester).post(url, {"decision": "approve"}), 403, "self_approval_not_allowed")
    refused(as_user(lead).post("/requests/999999/votes", {"decision": "approve"}), 404, "not_found")
    lead_api = as_user(lead)
    assert lead_api.post(url, {"decision": "approve"}).status_code == 201
    refused(lead_api.post(url, {"decision": "approve"}), 409, "already_voted")
    as_user(scientist1).post(url, {"decision": "reject", "comment": "no"})
    refused(as_user(outsider).post(url, {"decision": "approve"}), 409, "request_closed")
    assert TransitionRequest.objects.get().votes.count() == 2


def test_cancel_by_the_requester_only_and_once(fraud, requester, lead, as_user):
    request_id = create(as_user(requester)).json()["id"]

    refused(as_user(lead).post(f"/requests/{request_id}/cancel"), 403, "forbidden")
    response = as_user(requester).post(f"/requests/{request_id}/cancel")
    assert response.status_code == 200
    assert response.json()["decision"] == "cancelled"
    refused(as_user(requester).post(f"/requests/{request_id}/cancel"), 409, "request_closed")
    refused(as_user(requester).post("/requests/424242/cancel"), 404, "not_found")


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer qrm_not-a-token", "Token abc", "Bearer ", "Basic dXNlcjpwdw=="],
    ids=["missing", "wrong", "other-scheme", "empty", "basic"],
)
def test_requests_without_a_valid_token_are_401(fraud, client, header):
    headers = {"Authorization": header} if header else {}
    for response in (
        client.get("/api/v1/models", headers=headers),
        client.post(
            "/api/v1/requests",
            {"model": "fraud-detector", "version": 2, "target": "Staging"},
            content_type="application/json",
            headers=headers,
        ),
    ):
        refused(response, 401, "unauthorized")
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert not TransitionRequest.objects.exists()


def test_a_revoked_token_or_deactivated_user_is_401(fraud, requester, client):
    from reviews.api.auth import token_revoke

    token, plaintext = token_create(user=requester)
    api = Api(client, token=plaintext)
    assert api.get("/models").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None

    token_revoke(token_id=token.pk, actor="admin")
    assert "revoked" in refused(api.get("/models"), 401, "unauthorized")

    _, other = token_create(user=requester)
    requester.is_active = False
    requester.save()
    refused(Api(client, token=other).get("/models"), 401, "unauthorized")


def test_the_api_acts_as_the_tokens_user(fraud, requester, lead, as_user):
    """A lead's token votes as the lead; the requester's token cannot approve its own request."""
    request_id = create(as_user(requester)).json()["id"]
    as_user(lead).post(f"/requests/{request_id}/votes", {"decision": "approve"})
    assert TransitionRequest.objects.get().votes.get().user == lead


def test_create_api_token_prints_a_working_token_stored_only_hashed(fraud, requester, client):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_token", "requester", "--name", "ci", stdout=out, stderr=err)

    plaintext = out.getvalue().strip()
    assert plaintext.startswith("qrm_") and len(plaintext) > 40
    assert "shown once" in err.getvalue()
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (requester, "ci")
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert all(plaintext not in str(value) for value in ApiToken.objects.values().get().values())
    assert not AuditEvent.objects.filter(details__icontains=plaintext).exists()
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.details == {"user": "requester", "name": "ci", "prefix": token.prefix}
    assert Api(client, token=plaintext).get("/models").status_code == 200


def test_create_api_token_refuses_unknown_users(db):
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("create_api_token", "ghost", stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_admin_lists_and_revokes_tokens_with_an_audit_event(fraud, requester, admin_user, client):
    token, plaintext = token_create(user=requester, name="ci")
    client.force_login(admin_user)

    listing = client.get("/admin/reviews/apitoken/")
    assert listing.status_code == 200
    assert token.prefix in listing.content.decode()
    assert plaintext not in listing.content.decode()

    response = client.post(
        "/admin/reviews/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert (event.actor, event.details["prefix"]) == ("admin", token.prefix)
    client.logout()
    refused(Api(client, token=plaintext).get("/models"), 401, "unauthorized")


# -- schema and docs --------------------------------------------------------------------------


def test_openapi_schema_lists_the_endpoints(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/v1/keys",
        "/api/v1/models",
        "/api/v1/models/{name}/versions",
        "/api/v1/models/{name}/timeline",
        "/api/v1/requests",
        "/api/v1/requests/{id}",
        "/api/v1/requests/{id}/votes",
        "/api/v1/requests/{id}/cancel",
        "/api/v1/rollbacks",
        "/api/v1/break-glass",
        "/api/v1/requests/{id}/comments",
        "/api/v1/requests/{id}/timeline",
    }
    timeline = schema["paths"]["/api/v1/models/{name}/timeline"]["get"]
    assert {p["name"] for p in timeline["parameters"]} == {"name", "target", "at"}
    assert set(schema["paths"]["/api/v1/break-glass"]["post"]["responses"]) >= {"201", "429"}
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    listing = schema["paths"]["/api/v1/requests"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"state", "model", "limit", "fields"}
    answer = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["discriminator"]["propertyName"] == "fields"
    assert set(schema["components"]["schemas"]["RequestSummary"]["properties"]) == SUMMARY_FIELDS
    request_in = schema["components"]["schemas"]["RequestIn"]
    assert request_in["properties"]["comment"]["maxLength"] == COMMENT_MAX
    assert request_in["properties"]["version"]["type"] == "integer"
    assert request_in["additionalProperties"] is False


def test_docs_page_loads_swagger_from_our_own_static_files(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    asset = client.get("/static/ninja/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert b"SwaggerUI" in b"".join(asset.streaming_content)


# -- fuzzing ----------------------------------------------------------------------------------


@pytest.fixture
def lead_token(transactional_db, policies):
    return token_create(user=policies["lead"])[1]


@pytest.fixture
def api_schema(live_server, lead_token, rq_queue):
    """The schema as served, and a model with versions for the fuzzer to find."""
    rq_queue("transitions")  # approvals the fuzzer reaches queue jobs: keep them out of others'
    model = make_model("fraud-detector")
    make_version(model, 1, stage="Production", metrics={"f1": 0.87})
    make_version(model, 2, metrics=GOOD)
    return schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")


def fuzz(operation, mode, headers, **pinned) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, **pinned))
    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    call()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzed_requests_never_get_a_server_error(api_schema, lead_token, requester, mode):
    """Every operation with valid and with invalid inputs: a 4xx at worst, never a 5xx. Random
    names and ids mostly miss, so path parameters are also pinned to rows that exist."""
    headers = {"Authorization": f"Bearer {lead_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 14  # every operation the schema lists
    pending = TransitionRequest.objects.create(
        version=make_version(ModelVersion.objects.get(version=2).model, metrics=GOOD),
        target="Production",
        requester=requester,
        policy_snapshot={"require": [{"group": "ml-leads", "approvals": 1}]},
        expires_at=timezone.now() + timedelta(days=1),
    )
    existing = {"id": pending.pk, "name": "fraud-detector"}

    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not (
            operation.path_parameters or operation.query or operation.body
        ):
            continue  # nothing to get wrong (GET /keys)
        fuzz(operation, mode, headers)
        names = {p.name for p in operation.path_parameters}
        if names:
            fuzz(operation, mode, headers, path_parameters={n: existing[n] for n in names})
