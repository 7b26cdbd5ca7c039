"""Transition requests through /api/v1: opening one, and every refusal of its body or by the
engine; reading and listing requests; cancelling one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from reviews.models import COMMENT_MAX, ApprovalPolicy, AuditEvent, TransitionRequest
from reviews.policies.loading import set_requesters
from tests.factories import GOOD, make_model, make_version
from tests.pages import SUMMARY_FIELDS, create, refused

pytestmark = pytest.mark.django_db


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


def test_cancel_by_the_requester_only_and_once(fraud, requester, lead, as_user):
    request_id = create(as_user(requester)).json()["id"]

    refused(as_user(lead).post(f"/requests/{request_id}/cancel"), 403, "forbidden")
    response = as_user(requester).post(f"/requests/{request_id}/cancel")
    assert response.status_code == 200
    assert response.json()["decision"] == "cancelled"
    refused(as_user(requester).post(f"/requests/{request_id}/cancel"), 409, "request_closed")
    refused(as_user(requester).post("/requests/424242/cancel"), 404, "not_found")
