"""A request's timeline is read from the audit log, in order, in one query."""

from __future__ import annotations

import pytest

from registry.models import ChangeKind, Stage
from reviews.audit import chain
from reviews.conversation import comments, timeline
from reviews.decisions import deciding, opening, voting
from reviews.models import AuditEvent
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db


def out_of_band(change: str, old, new, *, model: str = "fraud", version: int = 1) -> None:
    chain.record(
        "registry.out_of_band",
        actor="mlflow",
        model_name=model,
        version=version,
        details={"change": change, "old": old, "new": new},
    )


def test_timeline_tells_the_conversation_in_order(pending, requester, scientist1, lead):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve", comment="ok")
    comments.comment_post(request_id=pending.pk, user=lead, body="Is the drift check done?")
    comments.comment_post(request_id=pending.pk, user=requester, body="Yes, see run 12.")
    deciding.request_cancel(request_id=pending.pk, user=requester, reason="Found a leak.")
    entries = timeline.timeline(pending)
    assert [(e.actor, e.action) for e in entries] == [
        ("requester", "request.created"),
        ("scientist1", "vote.cast"),
        ("lead", "comment.posted"),
        ("requester", "comment.posted"),
        ("requester", "request.cancelled"),
    ]
    created, vote, question, answer, cancelled = entries
    assert created.title == "Requested Production against v1 (policy production)"
    assert created.text == "Retrained."
    assert created.items[0] == "✓ accuracy 0.9000 >= 0.8000" and len(created.items) == 2
    assert vote.title == "Approved (for data-science)" and vote.text == "ok"
    assert question.text == "Is the drift check done?" and question.kind == "comment"
    assert answer.text == "Yes, see run 12."
    assert cancelled.title == "Request cancelled"
    assert cancelled.text == "Cancelled by requester: Found a leak."


def test_timeline_shows_dismissed_approvals_and_reevaluated_gates(pending, scientist1):
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve")
    voting.approvals_mark_stale(pending, reason="Production is now held by v3 (was v1).")
    chain.record(
        "request.reevaluated",
        actor="system",
        request=pending,
        details={"reason": "the baseline moved", "baseline": 3, "gates": pending.gate_results},
    )
    stale, reevaluated = timeline.timeline(pending)[-2:]
    assert stale.title == "Approvals dismissed: scientist1"
    assert stale.text == "Production is now held by v3 (was v1)."
    assert reevaluated.title == "Gates re-evaluated; the baseline is now v3"
    assert reevaluated.items[0] == "✓ accuracy 0.9000 >= 0.8000"


def test_timeline_shows_transition_attempts_and_their_outcome(pending):
    chain.record("transition.started", request=pending, details={"attempt": 1})
    chain.record(
        "transition.attempt_failed", request=pending, details={"attempt": 1, "error": "HTTP 503"}
    )
    chain.record("transition.done", request=pending, details={"archived_versions": [1]})
    started, failed, done = timeline.timeline(pending)[-3:]
    assert started.title == "Transition attempt started (attempt 1)"
    assert failed.title.startswith("Transition attempt failed") and failed.text == "HTTP 503"
    assert "transition-failed" in failed.kind
    assert done.title == "Transition done in MLflow"


def test_timeline_shows_out_of_band_moves_of_the_same_model_and_target_only(pending):
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.PRODUCTION, Stage.ARCHIVED)
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.NONE, Stage.STAGING, version=2)  # another target
    out_of_band(ChangeKind.ALIAS_ADDED, None, "champion")  # an alias, not the stage
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.NONE, Stage.PRODUCTION, model="other")
    moves = [e for e in timeline.timeline(pending) if e.action == "registry.out_of_band"]
    assert [e.title for e in moves] == [
        "Changed in MLflow outside Quorum: v1 moved from Production to Archived"
    ]


def test_an_alias_requests_timeline_shows_its_aliass_out_of_band_changes(policies, requester):
    model = make_model("churn")
    make_version(model, 1, metrics={"accuracy": 0.9, "f1": 0.8})
    request = opening.request_create(
        model="churn", version=1, target="@champion", requester=requester
    )
    out_of_band(ChangeKind.ALIAS_ADDED, None, "champion", model="churn", version=1)
    out_of_band(ChangeKind.ALIAS_ADDED, None, "challenger", model="churn", version=1)
    titles = [e.title for e in timeline.timeline(request) if e.kind == "out-of-band"]
    assert titles == ["Changed in MLflow outside Quorum: v1 got alias @champion"]


def test_out_of_band_changes_before_the_request_are_not_its_history(policies, requester):
    model = make_model("fraud")
    make_version(model, 1, stage=Stage.PRODUCTION, metrics={"accuracy": 0.85, "f1": 0.80})
    make_version(model, 2, metrics={"accuracy": 0.90, "f1": 0.84})
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.NONE, Stage.PRODUCTION)
    request = opening.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )
    assert [e.action for e in timeline.timeline(request)] == ["request.created"]


@pytest.mark.parametrize("events", [2, 40])
def test_timeline_is_one_query_however_long(pending, lead, events, django_assert_num_queries):
    for n in range(events):
        comments.comment_post(request_id=pending.pk, user=lead, body=f"note {n}")
    out_of_band(ChangeKind.STAGE_CHANGED, Stage.PRODUCTION, Stage.ARCHIVED)
    with django_assert_num_queries(1):
        entries = timeline.timeline(pending)
    assert len(entries) == events + 2
    assert AuditEvent.objects.filter(request=pending).count() == events + 1
