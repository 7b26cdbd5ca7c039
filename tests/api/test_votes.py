"""Votes through /api/v1: approvals counted toward the quorum, rejections, and each refusal."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from reviews.models import AuditEvent, TransitionRequest
from tests.pages import create, refused

pytestmark = pytest.mark.django_db


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
