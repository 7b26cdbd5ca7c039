"""The request's status endpoint (`reviews:request_status`), which the request page polls while
its transition is queued or running, and the outcome sentence it reports.
"""

from __future__ import annotations

import json
import re

import pytest

from reviews.audit import chain
from reviews.models import Decision, Execution, TransitionRequest
from tests.pages import action_url, detail_url, login, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]


def test_status_endpoint_reports_the_outcome_sentence_when_done(client, pending, lead):
    TransitionRequest.objects.filter(pk=pending.pk).update(
        decision=Decision.APPROVED, execution=Execution.DONE
    )
    # What the transition job recorded: its move archived v1 (the mirror's sync may come later).
    chain.record(
        "transition.done",
        request=pending,
        details={"already_at_target": False, "archived_versions": [1]},
    )
    response = login(client, lead).get(action_url("request_status", pending))
    status = response.json()
    assert status["outcome"] == "version 2 is now in Production (version 1 archived)."
    assert (status["execution"], status["poll"]) == ("done", False)
    assert "Version 2 is now in Production (version 1 archived)." in text_of(
        client.get(detail_url(pending))
    )


def test_status_endpoint_keeps_the_page_polling_while_queued(client, pending, lead):
    TransitionRequest.objects.filter(pk=pending.pk).update(
        decision=Decision.APPROVED, execution=Execution.QUEUED
    )
    response = login(client, lead).get(detail_url(pending))
    embedded = json.loads(
        re.search(
            r'<script id="request-status" type="application/json">(.*?)</script>',
            response.content.decode(),
        ).group(1)
    )
    assert embedded["poll"] is True and embedded["url"] == action_url("request_status", pending)
    assert 'src="/static/request_status.js"' in response.content.decode()


def test_an_unchanged_request_answers_the_poll_with_an_empty_304(client, pending, lead):
    login(client, lead)
    first = client.get(action_url("request_status", pending))
    tag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert first.json()["live"] is True

    again = client.get(action_url("request_status", pending), HTTP_IF_NONE_MATCH=tag)

    assert again.status_code == 304 and again.content == b""


def test_a_vote_moves_the_revision_on_and_the_poll_gets_the_new_state(
    client, pending, lead, scientist1
):
    from reviews.decisions import voting

    login(client, lead)
    first = client.get(action_url("request_status", pending))
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve")

    after = client.get(action_url("request_status", pending), HTTP_IF_NONE_MATCH=first["ETag"])

    assert after.status_code == 200
    assert after.json()["revision"] > first.json()["revision"]
    assert after["ETag"] != first["ETag"]


def test_a_signed_in_users_pages_are_not_kept_by_the_browser(client, pending, lead):
    login(client, lead)
    for page in (detail_url(pending), "/reviews/"):
        assert "no-store" in client.get(page).headers["Cache-Control"]
