"""The request page and every action on it: vote, cancel, retry, and the promotion request form.

Each mutating view is checked for its happy path, GET → 405, anonymous → login, a user who may
not → 403, and a request in the wrong state → the page again with the reason and nothing changed.
"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import Stage
from reviews import audit, services
from reviews.models import AuditEvent, Decision, Execution, TransitionRequest, Vote
from tests.factories import (
    cache_all_history,
    make_hostile_request,
    make_model,
    make_user,
    make_version,
)

pytestmark = pytest.mark.django_db

HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
# Session + user, then the page's own: the same for 2 votes and versions as for 12.
DETAIL_QUERIES = 11
STATUS_QUERIES = 3


@pytest.fixture(autouse=True)
def no_mlflow(settings, monkeypatch):
    """Pages read cached history only; an accidental MLflow call fails fast and shows."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    settings.MLFLOW_UI_URL = "http://mlflow.example"


@pytest.fixture
def fraud(policies):
    """v1 in Production; v2 better on every metric; v3 fails the accuracy gate."""
    model = make_model("fraud", description="Scores card payments.")
    specs = [
        (Stage.PRODUCTION, {"accuracy": 0.85, "f1": 0.80, "log_loss": 0.40}),
        (Stage.NONE, {"accuracy": 0.90, "f1": 0.84, "log_loss": 0.31}),
        (Stage.NONE, {"accuracy": 0.70, "f1": 0.84, "log_loss": 0.50}),
    ]
    for number, (stage, metrics) in enumerate(specs, start=1):
        version = make_version(
            model, number, stage=stage, metrics=metrics, params={"lr": number / 10}
        )
        cache_all_history(version)
    return model


@pytest.fixture
def pending(fraud, requester):
    return services.request_create(
        model="fraud", version=2, target="Production", requester=requester, comment="Retrained."
    )


def login(client, user):
    client.force_login(user)
    return client


def text_of(response) -> str:
    body = response.content.decode()
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def detail_url(request) -> str:
    return reverse("reviews:request_detail", args=[request.pk])


def action_url(name: str, request) -> str:
    return reverse(f"reviews:{name}", args=[request.pk])


# -- the page -----------------------------------------------------------------------------------


def test_request_page_shows_header_evidence_gates_and_sign_offs(client, pending, lead):
    response = login(client, lead).get(detail_url(pending))
    assert response.status_code == 200
    text = text_of(response)
    assert "fraud v2 → Production" in text
    assert "Retrained." in text and "requester" in text
    assert "production : needs 1 of ml-leads and 2 of data-science" in text
    # Evidence: candidate against the version in Production, deltas and direction.
    assert "Δ = v2 − v1" in text
    assert "+0.0500 (better)" in text  # accuracy 0.90 vs 0.85
    assert "−0.0900 (better)" in text  # log_loss went down: better
    assert "lr (differs)" in text
    targets = [chart["target"] for chart in response.context["chart_data"]["charts"]]
    assert "chart-comparison" in targets and "chart-history-0" in targets
    # Gates with their values and why.
    assert "accuracy 0.9000 >= 0.8000" in text and "✓ pass" in text
    # Sign-offs: nobody yet, who can still sign.
    assert "ml-leads 0/1" in text and "data-science 0/2" in text
    assert "Can still sign: scientist1, scientist2, scientist3" in text
    assert 'name="decision" value="approve"' in response.content.decode()


def test_request_page_shows_nan_and_infinite_metrics_and_the_gate_they_fail(
    client, fraud, requester, lead
):
    # Mirror rows as the sync writes them when MLflow holds NaN and infinities.
    make_version(fraud, 4, metrics={"accuracy": "NaN", "f1": 0.84, "log_loss": "Infinity"})
    request = services.request_create(
        model="fraud", version=4, target="Production", requester=requester
    )

    response = login(client, lead).get(detail_url(request))

    assert response.status_code == 200
    text = text_of(response)
    assert "accuracy is NaN: not a finite number" in text
    assert re.search(r"accuracy .*? NaN 0\.8500", text)
    assert re.search(r"log_loss .*? ∞ 0\.4000", text)
    bars = next(c for c in response.context["chart_data"]["charts"] if c["kind"] == "bar")
    assert bars["notes"] == ["v4: NaN for accuracy, ∞ for log_loss (not drawn)"]


def test_request_page_says_plainly_when_nothing_holds_the_target(client, fraud, requester, lead):
    fraud.versions.filter(version=1).update(stage=Stage.ARCHIVED)
    request = services.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )
    text = text_of(login(client, lead).get(detail_url(request)))
    assert "No baseline: nothing holds Production for fraud yet" in text
    assert "no baseline: nothing holds the target yet" in text  # the f1 gate's reason


@pytest.mark.parametrize(
    ("who", "sentence"),
    [
        ("requester", "You requested this; this policy does not allow self-approval."),
        ("outsider", "You are not in ml-leads or data-science."),
    ],
)
def test_who_cannot_vote_sees_why_and_no_buttons(client, pending, cast, who, sentence):
    response = login(client, cast[who]).get(detail_url(pending))
    assert sentence in text_of(response)
    assert 'value="approve"' not in response.content.decode()


def test_decided_request_says_already_approved_and_shows_no_buttons(
    client, pending, cast, lead, scientist1, scientist2
):
    for voter in (lead, scientist1, scientist2):
        services.vote_cast(request_id=pending.pk, user=voter, decision="approve")
    response = login(client, cast["scientist3"]).get(detail_url(pending))
    assert "This request is already approved." in text_of(response)
    assert 'value="approve"' not in response.content.decode()


def test_stale_approval_is_struck_through_with_its_reason(client, pending, lead, scientist1):
    services.vote_cast(request_id=pending.pk, user=scientist1, decision="approve", comment="ok")
    services.approvals_mark_stale(pending, reason="v2's metrics changed in MLflow")
    response = login(client, lead).get(detail_url(pending))
    body = response.content.decode()
    assert re.search(r'class="vote vote-approve is-stale"', body)
    assert "No longer counts: v2&#x27;s metrics changed in MLflow" in body
    assert "data-science 0/2" in text_of(response)


def test_each_approval_shows_the_one_group_it_counts_for(
    client, pending, cast, lead, scientist1, scientist2
):
    from django.contrib.auth.models import Group

    Group.objects.get(name="data-science").user_set.add(lead)
    for voter in (lead, scientist1):
        services.vote_cast(request_id=pending.pk, user=voter, decision="approve")
    text = text_of(login(client, scientist2).get(detail_url(pending)))
    assert "lead (for ml-leads) approved" in text
    assert "scientist1 (for data-science) approved" in text
    # lead is in both groups but one person: data-science still needs another.
    assert "ml-leads 1/1" in text and "data-science 1/2" in text
    assert "1 more needed" in text


def test_an_approval_no_group_needs_says_it_is_not_counted(client, pending, cast, lead):
    # data-science needs 2: the third scientist's approval counts for nothing.
    for name in ("scientist1", "scientist2", "scientist3"):
        services.vote_cast(request_id=pending.pk, user=cast[name], decision="approve")
    text = text_of(login(client, lead).get(detail_url(pending)))
    assert "scientist2 (for data-science) approved" in text
    assert "scientist3 approved" in text and "scientist3 (for" not in text
    assert "Not counted: data-science has every approval it needs." in text


def test_unknown_request_is_a_404_page(client, lead):
    response = login(client, lead).get("/reviews/999999/")
    assert response.status_code == 404
    assert "There is no request #999999." in text_of(response)


def test_request_page_needs_a_login(client, pending):
    response = client.get(detail_url(pending))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_status_endpoint_reports_the_outcome_sentence_when_done(client, pending, fraud, lead):
    TransitionRequest.objects.filter(pk=pending.pk).update(
        decision=Decision.APPROVED, execution=Execution.DONE
    )
    # What the transition job recorded: its move archived v1 (the mirror's sync may come later).
    audit.record(
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


@pytest.mark.parametrize("votes", [2, 12])
def test_request_page_query_count_does_not_grow(
    client, fraud, requester, lead, votes, django_assert_max_num_queries
):
    from django.contrib.auth.models import Group

    science = Group.objects.get(name="data-science")
    for n in range(votes):
        make_version(fraud, metrics={"accuracy": 0.8, "f1": 0.8})
        science.user_set.add(make_user(f"extra{n}"))
    request = services.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )
    pending_policy = request.policy_snapshot
    pending_policy["require"][1]["approvals"] = votes + 5  # keep it pending while they vote
    TransitionRequest.objects.filter(pk=request.pk).update(policy_snapshot=pending_policy)
    for user in science.user_set.filter(username__startswith="extra"):
        services.vote_cast(request_id=request.pk, user=user, decision="approve", comment="ok")
    login(client, lead)
    with django_assert_max_num_queries(DETAIL_QUERIES):
        response = client.get(detail_url(request))
    assert response.status_code == 200
    assert f"data-science {votes}/{votes + 5}" in text_of(response)
    with django_assert_max_num_queries(STATUS_QUERIES):
        assert client.get(action_url("request_status", request)).status_code == 200


def test_mlflow_and_user_text_is_escaped_on_the_request_page(client, policies, requester, lead):
    request = make_hostile_request(
        requester=requester, voter=lead, decision="approve", text=HOSTILE
    )
    response = login(client, lead).get(detail_url(request))
    body = response.content.decode()
    assert HOSTILE not in body
    assert body.count(ESCAPED) >= 5  # title, comment, vote, params, metric name
    # Chart labels travel as JSON inside a script element: < and > are escaped there too.
    assert "\\u003Cimg" in body


# -- vote ---------------------------------------------------------------------------------------


def test_eligible_reviewer_approves_and_sees_progress(client, pending, lead):
    response = login(client, lead).post(
        action_url("vote", pending), {"decision": "approve", "comment": "Looks right."}, follow=True
    )
    assert response.redirect_chain == [(detail_url(pending), 302)]
    assert "You approved. The request waits for the other sign-offs." in messages_of(response)
    text = text_of(response)
    assert "ml-leads 1/1" in text and "Looks right." in text
    vote = Vote.objects.get(request=pending, user=lead)
    assert (vote.decision, vote.groups) == ("approve", ["ml-leads"])


def test_last_approval_approves_the_request(client, pending, lead, scientist1, scientist2):
    for voter in (lead, scientist1):
        services.vote_cast(request_id=pending.pk, user=voter, decision="approve")
    response = login(client, scientist2).post(
        action_url("vote", pending), {"decision": "approve"}, follow=True
    )
    assert "You approved: quorum reached, the transition is queued." in messages_of(response)
    pending.refresh_from_db()
    assert (pending.decision, pending.execution) == (Decision.APPROVED, Execution.QUEUED)
    assert 'id="execution-spinner"' in response.content.decode()


def test_rejection_with_a_comment_rejects_with_that_reason(client, pending, scientist1):
    response = login(client, scientist1).post(
        action_url("vote", pending),
        {"decision": "reject", "comment": "Recall dropped on the March slice."},
        follow=True,
    )
    pending.refresh_from_db()
    assert pending.decision == Decision.REJECTED
    assert pending.decision_reason == "Recall dropped on the March slice."
    assert "Recall dropped on the March slice." in text_of(response)


def test_rejection_without_a_comment_is_refused_inline_and_changes_nothing(
    client, pending, scientist1
):
    events = AuditEvent.objects.count()
    response = login(client, scientist1).post(
        action_url("vote", pending), {"decision": "reject", "comment": "  "}
    )
    assert response.status_code == 400
    assert "Say why you reject" in text_of(response)
    assert 'aria-invalid="true"' in response.content.decode()
    assert not Vote.objects.exists() and AuditEvent.objects.count() == events
    pending.refresh_from_db()
    assert pending.decision == Decision.PENDING


def test_get_on_vote_url_is_refused_and_changes_nothing(client, pending, lead):
    response = login(client, lead).get(action_url("vote", pending), {"decision": "approve"})
    assert response.status_code == 405
    assert not Vote.objects.exists()


def test_anonymous_vote_goes_to_login_and_changes_nothing(client, pending):
    response = client.post(action_url("vote", pending), {"decision": "approve"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert not Vote.objects.exists()


@pytest.mark.parametrize("who", ["outsider", "requester"])
def test_ineligible_vote_is_a_403_and_changes_nothing(client, pending, cast, who):
    response = login(client, cast[who]).post(action_url("vote", pending), {"decision": "approve"})
    assert response.status_code == 403
    assert "You" in text_of(response)  # the engine's sentence, on the 403 page
    assert not Vote.objects.exists()


def test_vote_on_a_decided_request_shows_why_and_changes_nothing(
    client, pending, scientist1, scientist2
):
    services.vote_cast(request_id=pending.pk, user=scientist1, decision="reject", comment="no")
    events = AuditEvent.objects.count()
    response = login(client, scientist2).post(
        action_url("vote", pending), {"decision": "approve"}, follow=True
    )
    assert response.redirect_chain == [(detail_url(pending), 302)]
    assert "This request is already rejected." in messages_of(response)
    assert Vote.objects.filter(user=scientist2).count() == 0
    assert AuditEvent.objects.count() == events


def test_second_vote_by_the_same_user_is_refused(client, pending, lead):
    services.vote_cast(request_id=pending.pk, user=lead, decision="approve")
    response = login(client, lead).post(
        action_url("vote", pending),
        {"decision": "reject", "comment": "changed my mind"},
        follow=True,
    )
    assert "You already voted (approve) on this request." in messages_of(response)
    assert Vote.objects.get(user=lead).decision == "approve"


def test_vote_on_an_unknown_request_is_a_404(client, lead):
    response = login(client, lead).post("/reviews/999999/vote", {"decision": "approve"})
    assert response.status_code == 404


def test_vote_without_a_csrf_token_is_refused(pending, lead):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    response = client.post(action_url("vote", pending), {"decision": "approve"})
    assert response.status_code == 403
    assert not Vote.objects.exists()


# -- cancel -------------------------------------------------------------------------------------


def test_requester_cancels_a_pending_request(client, pending, requester):
    response = login(client, requester).post(action_url("cancel", pending), follow=True)
    assert f"Request #{pending.pk} is cancelled." in messages_of(response)
    pending.refresh_from_db()
    assert pending.decision == Decision.CANCELLED
    assert 'action="' + action_url("cancel", pending) not in response.content.decode()


def test_get_on_cancel_url_changes_nothing(client, pending, requester):
    assert login(client, requester).get(action_url("cancel", pending)).status_code == 405
    pending.refresh_from_db()
    assert pending.decision == Decision.PENDING


def test_anonymous_cancel_goes_to_login(client, pending):
    response = client.post(action_url("cancel", pending))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    pending.refresh_from_db()
    assert pending.decision == Decision.PENDING


def test_someone_else_cannot_cancel(client, pending, lead):
    response = login(client, lead).post(action_url("cancel", pending))
    assert response.status_code == 403
    assert "Only the requester or an admin can cancel this request." in text_of(response)
    pending.refresh_from_db()
    assert pending.decision == Decision.PENDING


def test_cancelling_a_decided_request_shows_why(client, pending, requester, scientist1):
    services.vote_cast(request_id=pending.pk, user=scientist1, decision="reject", comment="no")
    response = login(client, requester).post(action_url("cancel", pending), follow=True)
    assert f"Request #{pending.pk} is already rejected." in messages_of(response)
    pending.refresh_from_db()
    assert pending.decision == Decision.REJECTED


# -- retry --------------------------------------------------------------------------------------


@pytest.fixture
def failed(pending):
    TransitionRequest.objects.filter(pk=pending.pk).update(
        decision=Decision.APPROVED,
        execution=Execution.FAILED,
        execution_error="MLflow answered 503",
        execution_attempts=3,
    )
    pending.refresh_from_db()
    return pending


def test_staff_sees_the_error_and_retries_a_failed_transition(
    client, failed, admin_user, django_capture_on_commit_callbacks
):
    page = login(client, admin_user).get(detail_url(failed))
    assert "MLflow answered 503" in text_of(page)
    assert 'id="retry-form" hidden' not in page.content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(action_url("retry", failed), follow=True)
    assert "The transition is queued again." in messages_of(response)
    assert len(callbacks) == 1  # the transition job, enqueued once committed
    failed.refresh_from_db()
    assert failed.execution == Execution.QUEUED
    assert AuditEvent.objects.filter(action="transition.retry", request=failed).exists()


def test_non_staff_sees_no_retry_and_cannot_retry(client, failed, requester):
    page = login(client, requester).get(detail_url(failed))
    assert 'id="retry-form"' not in page.content.decode()
    response = client.post(action_url("retry", failed))
    assert response.status_code == 403
    failed.refresh_from_db()
    assert failed.execution == Execution.FAILED


def test_get_on_retry_url_changes_nothing(client, failed, admin_user):
    assert login(client, admin_user).get(action_url("retry", failed)).status_code == 405
    failed.refresh_from_db()
    assert failed.execution == Execution.FAILED


def test_anonymous_retry_goes_to_login(client, failed):
    response = client.post(action_url("retry", failed))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_retrying_a_transition_that_did_not_fail_shows_why(client, pending, admin_user):
    response = login(client, admin_user).post(action_url("retry", pending), follow=True)
    assert any("has no failed transition to retry" in m for m in messages_of(response))
    pending.refresh_from_db()
    assert (pending.decision, pending.execution) == (Decision.PENDING, Execution.NONE)


# -- requesting a promotion -------------------------------------------------------------------


def request_url(name: str, version: int) -> str:
    return reverse("reviews:request_new", args=[name, version])


def test_version_page_offers_the_targets_policies_cover_with_a_preview(client, fraud, requester):
    response = login(client, requester).get("/models/fraud/versions/2/")
    body = response.content.decode()
    options = re.findall(
        r'<option value="([^"]+)"', body.split('id="promotion-target"')[1].split("</select>")[0]
    )
    assert options == ["Staging", "Production", "@champion"]
    assert '<option value="Production" selected>' in body
    text = text_of(response)
    assert "Policy production needs 1 of ml-leads and 2 of data-science , not counting you" in text
    assert "Compared with v1 , which holds Production now." in text
    assert "accuracy 0.9000 >= 0.8000" in text


def test_version_page_warns_when_a_required_gate_would_reject(client, fraud, requester):
    text = text_of(login(client, requester).get("/models/fraud/versions/3/"))
    assert "accuracy 0.7000 >= 0.8000: not met" in text
    assert "A required gate fails: this request would be rejected at once." in text


def test_version_page_links_an_open_request_instead_of_offering_it(client, pending, requester):
    response = login(client, requester).get("/models/fraud/versions/2/")
    body = response.content.decode()
    assert f"request #{pending.pk} → Production is open" in text_of(response)
    assert '<option value="Production"' not in body


def test_version_page_offers_a_target_only_to_its_policys_requester_groups(
    client, fraud, requester, lead
):
    from django.contrib.auth.models import Group

    from reviews.models import ApprovalPolicy
    from reviews.policies import set_requesters

    set_requesters(
        ApprovalPolicy.objects.get(name="production"), [Group.objects.get(name="ml-leads")]
    )

    response = login(client, requester).get("/models/fraud/versions/2/")
    assert '<option value="Production"' not in response.content.decode()
    assert '<option value="Staging"' in response.content.decode()
    assert "Production: Only members of ml-leads may request Production" in text_of(response)
    refused = client.post(request_url("fraud", 2), {"target": "Production"})
    assert refused.status_code == 400 and not TransitionRequest.objects.exists()
    offered = login(client, lead).get("/models/fraud/versions/2/").content.decode()
    assert '<option value="Production"' in offered
    client.post(request_url("fraud", 2), {"target": "Production"})
    made = TransitionRequest.objects.get()
    assert "only ml-leads may request" in text_of(client.get(detail_url(made)))


def test_version_page_says_when_no_policy_covers_the_model(client, requester):
    from reviews.models import ApprovalPolicy

    model = make_model("uncovered")
    make_version(model, metrics={"accuracy": 0.9})
    ApprovalPolicy.objects.all().delete()
    text = text_of(login(client, requester).get("/models/uncovered/versions/1/"))
    assert "No approval policy covers uncovered" in text


def test_requesting_a_promotion_redirects_to_the_new_request(client, fraud, requester):
    response = login(client, requester).post(
        request_url("fraud", 2), {"target": "Production", "comment": "Weekly retrain."}, follow=True
    )
    created = TransitionRequest.objects.get()
    assert response.redirect_chain == [(detail_url(created), 302)]
    assert (created.target, created.requester, created.comment) == (
        "Production",
        requester,
        "Weekly retrain.",
    )
    assert f"Request #{created.pk} is open; the approvers are told." in messages_of(response)


def test_request_a_failing_candidate_is_rejected_at_once_and_says_why(client, fraud, requester):
    response = login(client, requester).post(
        request_url("fraud", 3), {"target": "Production"}, follow=True
    )
    created = TransitionRequest.objects.get()
    assert created.decision == Decision.REJECTED
    assert any("rejected at once: Required gate failed" in m for m in messages_of(response))


def test_request_for_a_target_no_policy_covers_is_an_inline_error(client, fraud, requester):
    response = login(client, requester).post(request_url("fraud", 2), {"target": "Archived"})
    assert response.status_code == 400
    assert "Pick one of the targets listed" in text_of(response)
    assert not TransitionRequest.objects.exists()


def test_duplicate_request_is_an_inline_error_and_changes_nothing(client, pending, requester):
    # Posted from a version page opened before the first request: Production still on offer.
    response = login(client, requester).post(request_url("fraud", 2), {"target": "Production"})
    assert response.status_code == 400
    assert "Pick one of the targets listed" in text_of(response)
    assert TransitionRequest.objects.count() == 1


def test_get_on_the_request_form_creates_nothing(client, fraud, requester):
    response = login(client, requester).get(request_url("fraud", 2), {"target": "Production"})
    assert response.status_code == 200
    assert not TransitionRequest.objects.exists()


def test_anonymous_request_goes_to_login(client, fraud):
    response = client.post(request_url("fraud", 2), {"target": "Production"})
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert not TransitionRequest.objects.exists()


def test_request_for_an_unknown_version_is_a_404(client, fraud, requester):
    login(client, requester)
    assert client.post(request_url("fraud", 99), {"target": "Production"}).status_code == 404
    assert client.post(request_url("nope", 1), {"target": "Production"}).status_code == 404
    assert not TransitionRequest.objects.exists()


# -- honest summaries -----------------------------------------------------------------------------


def test_an_approval_names_the_quorum_not_only_the_last_voter(
    client, pending, lead, scientist1, scientist2
):
    for user in (lead, scientist1, scientist2):
        services.vote_cast(request_id=pending.pk, user=user, decision="approve")

    text = text_of(login(client, lead).get(detail_url(pending)))

    assert "approved by lead, scientist1 and scientist2" in text


def test_a_request_past_its_deadline_reads_expired_before_the_reconciler_runs(
    client, pending, requester, lead
):
    TransitionRequest.objects.filter(pk=pending.pk).update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )

    page = login(client, lead).get(detail_url(pending))
    text = text_of(page)
    badge = 'id="status-badge" class="badge badge-large state-expired">expired<'
    assert badge in page.content.decode()
    assert "Decision: expired" in text and "nobody can vote any more" in text
    assert 'name="decision"' not in page.content.decode()  # no vote buttons
    status = login(client, lead).get(action_url("request_status", pending)).json()
    assert (status["decision"], status["status"], status["state"]) == (
        "pending",
        "expired",
        "expired",
    )

    mine = text_of(login(client, requester).get(reverse("reviews:inbox")))
    assert f"v2 → Production #{pending.pk}" in mine and " expired" in mine
    assert TransitionRequest.objects.get(pk=pending.pk).decision == Decision.PENDING


def test_an_auto_approve_gate_that_did_not_fire_is_neutral_not_failed(client, fraud, requester):
    """Staging auto-approves above 0.97 accuracy; v2 has 0.90: people sign off instead."""
    request = services.request_create(
        model="fraud", version=2, target="Staging", requester=requester
    )

    response = login(client, requester).get(detail_url(request))
    page = response.content.decode()
    assert '<tr class="is-needs_sign_off">' in page and "is-failed" not in page
    assert "not auto-approved: needs sign-off" in text_of(response)
    assert "✗ fail" not in page

    inbox = login(client, requester).get(reverse("reviews:inbox")).content.decode()
    assert "not auto-approved: needs sign-off" in inbox
    assert "gates failed" not in inbox


def test_a_failure_no_retry_can_change_offers_no_retry_and_says_why(
    client, failed, admin_user, django_capture_on_commit_callbacks
):
    audit.record(
        "transition.failed",
        request=failed,
        details={"error": "fraud version 2 no longer exists in MLflow.", "permanent": True},
    )

    page = login(client, admin_user).get(detail_url(failed)).content.decode()
    assert 'id="retry-form" hidden' in page
    assert "Version 2 no longer exists in MLflow: retrying cannot bring it back" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(action_url("retry", failed), follow=True)
    assert any("retrying cannot bring it back" in m for m in messages_of(response))
    assert callbacks == []
    failed.refresh_from_db()
    assert failed.execution == Execution.FAILED
