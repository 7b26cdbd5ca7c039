"""The conversation through /api/v1: comments, the timeline, and cancel with a reason."""

from __future__ import annotations

import pytest

from reviews.conversation import comments
from reviews.decisions import deciding, voting
from reviews.models import COMMENT_MAX, Comment, Decision
from tests.pages import Api, refused

pytestmark = pytest.mark.django_db


def test_post_and_list_comments(client, pending, requester, lead):
    posted = Api(client, lead).post(f"/requests/{pending.pk}/comments", {"body": "Why now?"})
    assert posted.status_code == 201
    assert posted.json()["author"] == "lead" and posted.json()["body"] == "Why now?"
    Api(client, requester).post(f"/requests/{pending.pk}/comments", {"body": "Quarter end."})
    listed = Api(client, lead).get(f"/requests/{pending.pk}/comments").json()
    assert listed["count"] == 2
    assert [(c["author"], c["body"]) for c in listed["items"]] == [
        ("lead", "Why now?"),
        ("requester", "Quarter end."),
    ]


def test_comment_refusals_change_nothing(client, pending, requester, lead):
    api = Api(client, lead)
    path = f"/requests/{pending.pk}/comments"
    refused(api.post(path, {"body": "   "}), 400, "empty_comment")
    refused(api.post(path, {"body": "x" * (COMMENT_MAX + 1)}), 400, "invalid_request")
    refused(api.post(path, {"body": "hi", "extra": 1}), 400, "invalid_request")
    refused(api.post(f"/requests/{pending.pk + 9}/comments", {"body": "hi"}), 404, "not_found")
    deciding.request_cancel(request_id=pending.pk, user=requester)
    detail = refused(api.post(path, {"body": "hi", "seen_decision": "pending"}), 409, "page_stale")
    assert "became cancelled" in detail
    assert not Comment.objects.exists()


def test_comments_need_a_token(client, pending):
    response = client.get(f"/api/v1/requests/{pending.pk}/comments")
    assert response.status_code == 401


def test_timeline_reads_the_audit_log(client, pending, requester, scientist1):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve", comment="ok")
    comments.comment_post(request_id=pending.pk, user=requester, body="Thanks!")
    items = Api(client, scientist1).get(f"/requests/{pending.pk}/timeline").json()["items"]
    assert [(i["actor"], i["action"]) for i in items] == [
        ("requester", "request.created"),
        ("scientist1", "vote.cast"),
        ("requester", "comment.posted"),
    ]
    assert items[2]["text"] == "Thanks!" and items[2]["kind"] == "comment"
    assert items[0]["items"][0] == "✓ accuracy 0.9000 >= 0.8000"


def test_timeline_of_unknown_request_is_404(client, pending, lead):
    refused(Api(client, lead).get(f"/requests/{pending.pk + 9}/timeline"), 404, "not_found")


def test_cancel_takes_a_reason(client, pending, requester):
    response = Api(client, requester).post(
        f"/requests/{pending.pk}/cancel", {"reason": "Superseded by v3."}
    )
    assert response.status_code == 200
    assert response.json()["decision"] == Decision.CANCELLED
    assert response.json()["decision_reason"] == "Cancelled by requester: Superseded by v3."


def test_cancel_without_a_body_still_works(client, pending, requester):
    api = Api(client, requester)
    response = client.post(
        f"/api/v1/requests/{pending.pk}/cancel",
        content_type="application/json",
        headers=api.headers,
    )
    assert response.status_code == 200, response.content
    assert response.json()["decision_reason"] == "Cancelled by requester"


def test_openapi_lists_the_conversation(client):
    schema = client.get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/requests/{id}/comments"])
    assert "get" in paths["/api/v1/requests/{id}/timeline"]
    cancel = paths["/api/v1/requests/{id}/cancel"]["post"]
    assert "requestBody" in cancel
