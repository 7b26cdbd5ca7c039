"""Re-review after approvals are dismissed: the voter is told (mail and webhook), the request is
back in their inbox marked re-review, and the page shows the stale vote beside the vote form.

The end-to-end case runs the real sync against a real MLflow server: lead approves v3 for
Production, someone moves v2 into Production in MLflow directly, the sync dismisses the approval.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.sync import sync_registry
from reviews.conversation import timeline
from reviews.decisions import opening, voting
from reviews.models import AuditEvent, Notification, WebhookDelivery
from reviews.notify import render, webhooks_out
from tests.mlflow_registry import register_in_mlflow

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.com/quorum"


@pytest.fixture
def addressed(cast, settings):
    settings.QUORUM_WEBHOOK_URLS = [HOOK]
    for user in get_user_model().objects.all():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])


def test_each_voter_whose_approval_went_stale_is_asked_to_review_again(
    pending, addressed, lead, scientist1, scientist2
):
    voting.vote_cast(request_id=pending.pk, user=lead, decision="approve", comment="ok")
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve")
    voting.approvals_mark_stale(pending, reason="Production is now held by v3 (was v1).")
    asked = Notification.objects.filter(kind="rereview").select_related("recipient")
    assert {n.recipient.username for n in asked} == {"lead", "scientist1"}

    event = AuditEvent.objects.get(action="votes.stale")
    mail = render(event, "rereview")
    assert mail["subject"] == (
        f"[Quorum] Your approval of #{pending.pk} fraud v2 → Production was dismissed: "
        "please review again"
    )
    assert "was dismissed because: Production is now held by v3 (was v1)." in mail["text"]
    assert "Awaiting my review" in mail["text"]
    assert f"/reviews/{pending.pk}/" in mail["text"]


def test_a_voter_who_voted_again_is_not_asked_by_a_later_dismissal_of_others(
    pending, addressed, lead, scientist1
):
    voting.vote_cast(request_id=pending.pk, user=lead, decision="approve")
    voting.approvals_mark_stale(pending, reason="Metrics changed.")
    voting.vote_cast(request_id=pending.pk, user=lead, decision="approve")
    Notification.objects.all().delete()
    voting.vote_cast(request_id=pending.pk, user=scientist1, decision="approve")
    voting.approvals_mark_stale(pending, reason="Metrics changed again.")
    # lead's second approval went stale too: both are asked, once each for this dismissal.
    names = Notification.objects.filter(kind="rereview").values_list(
        "recipient__username", flat=True
    )
    assert sorted(names) == ["lead", "scientist1"]


def test_the_dismissal_is_an_outgoing_webhook_event(pending, addressed, lead):
    voting.vote_cast(request_id=pending.pk, user=lead, decision="approve")
    voting.approvals_mark_stale(pending, reason="Metrics changed.")
    delivery = WebhookDelivery.objects.get(event__action="votes.stale")
    assert delivery.url == HOOK
    body = webhooks_out.payload(delivery.event)
    assert body["event"] == "votes.stale" and "execution" not in body
    assert body["details"] == {"reason": "Metrics changed.", "voters": ["lead"]}
    assert body["request"]["id"] == pending.pk


def test_the_inbox_marks_the_request_re_review_with_the_reason(client, pending, lead, scientist1):
    voting.vote_cast(request_id=pending.pk, user=lead, decision="approve")
    voting.approvals_mark_stale(pending, reason="Metrics changed.")
    client.force_login(lead)
    page = client.get(reverse("reviews:inbox")).content.decode()
    assert "re-review" in page and "Your approval was dismissed: Metrics changed." in page
    client.force_login(scientist1)  # awaited too, but never approved: no marker
    assert "re-review" not in client.get(reverse("reviews:inbox")).content.decode()


def test_an_out_of_band_move_dismisses_approvals_and_the_timeline_says_why(
    mlflow_client, unique_name, policies, addressed, requester, lead, client
):
    register_in_mlflow(mlflow_client, unique_name, versions=3)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=mlflow_client)
    request = opening.request_create(
        model=unique_name, version=3, target="Production", requester=requester
    )
    voting.vote_cast(request_id=request.pk, user=lead, decision="approve", comment="v3 wins")
    mlflow_client.transition_stage(unique_name, 2, "Production")  # out of band
    sync_registry(model=unique_name, client=mlflow_client)

    assert Notification.objects.get(kind="rereview").recipient == lead
    actions = [e.action for e in timeline.timeline(request)]
    assert actions[:2] == ["request.created", "vote.cast"]
    assert {"registry.out_of_band", "request.reevaluated", "votes.stale"} <= set(actions)
    reevaluated = next(e for e in timeline.timeline(request) if e.action == "request.reevaluated")
    assert reevaluated.title == "Gates re-evaluated; the baseline is now v2"

    client.force_login(lead)
    page = client.get(reverse("reviews:request_detail", args=[request.pk])).content.decode()
    assert 'id="stale-notice"' in page and "<q>v3 wins</q>" in page
    assert 'name="decision" value="approve"' in page  # the place to vote again, beside it
    assert 'id="gates-reevaluated"' in page and "Production is now held by v2" in page
