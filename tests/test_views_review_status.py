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
