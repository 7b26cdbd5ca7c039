"""The Django admin's door and its records (reviews/admin/records.py): who gets in, every
changelist and object page, votes, audit events and requests read-only, the chain's state on the
audit list, and the retry and cancel actions on requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import ModelVersion, RegisteredModel
from reviews.audit import chain, verification
from reviews.execution.jobs import QUEUE, transition_job_id
from reviews.models import ApprovalPolicy, AuditEvent, Decision, Execution, TransitionRequest, Vote
from tests.pages import group_id, shown_messages

pytestmark = pytest.mark.django_db


CHANGELISTS = [
    "admin:reviews_approvalpolicy_changelist",
    "admin:reviews_transitionrequest_changelist",
    "admin:reviews_vote_changelist",
    "admin:reviews_auditevent_changelist",
    "admin:reviews_outofbandrevert_changelist",
    "admin:auth_group_changelist",
    "admin:reviews_notification_changelist",
    "admin:reviews_webhookdelivery_changelist",
    "admin:reviews_apitoken_changelist",
    "admin:identity_provideridentity_changelist",
]


@pytest.fixture
def a_request(policies, requester):
    """A pending request for fraud-detector v2 → Production, with one approval."""
    model = RegisteredModel.objects.create(name="fraud-detector")
    version = ModelVersion.objects.create(model=model, version=2, metrics={"accuracy": 0.9})
    request = TransitionRequest.objects.create(
        version=version,
        target="Production",
        requester=requester,
        expires_at=timezone.now() + timedelta(days=7),
    )
    Vote.objects.create(request=request, user=policies["lead"], decision="approve")
    chain.record("request.create", actor=requester, request=request)
    return request


# -- who gets in -------------------------------------------------------------------------------


@pytest.mark.parametrize("url_name", ["admin:index", *CHANGELISTS])
def test_non_staff_user_is_sent_to_the_admin_login(client, outsider, url_name):
    client.force_login(outsider)
    url = reverse(url_name)

    response = client.get(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('admin:login')}?next={url}"


def test_anonymous_user_is_sent_to_the_admin_login(client):
    response = client.get(reverse("admin:index"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("url_name", CHANGELISTS)
def test_staff_can_open_each_changelist(admin_client, a_request, url_name):
    response = admin_client.get(reverse(url_name))

    assert response.status_code == 200


def test_staff_can_open_each_object_page(admin_client, a_request):
    policy = ApprovalPolicy.objects.get(name="production")
    pages = [
        reverse("admin:reviews_approvalpolicy_change", args=[policy.pk]),
        reverse("admin:reviews_transitionrequest_change", args=[a_request.pk]),
        reverse("admin:reviews_vote_change", args=[a_request.votes.get().pk]),
        reverse("admin:reviews_auditevent_change", args=[AuditEvent.objects.first().pk]),
        reverse("admin:auth_group_change", args=[group_id("ml-leads")]),
        reverse("admin:reviews_approvalpolicy_add"),
        reverse("admin:auth_group_add"),
    ]
    for page in pages:
        assert admin_client.get(page).status_code == 200, page


def test_requests_can_be_filtered_by_decision_execution_and_model(admin_client, a_request):
    url = reverse("admin:reviews_transitionrequest_changelist")

    shown = admin_client.get(url, {"decision": "pending", "version__model__name": "fraud-detector"})
    hidden = admin_client.get(url, {"execution": "failed"})

    assert list(shown.context["cl"].result_list) == [a_request]
    assert list(hidden.context["cl"].result_list) == []


# -- read-only pages ---------------------------------------------------------------------------


def readonly_objects(a_request) -> list[tuple[str, object]]:
    return [
        ("vote", a_request.votes.get()),
        ("auditevent", AuditEvent.objects.order_by("sequence").first()),
        ("transitionrequest", a_request),
    ]


def test_votes_audit_events_and_requests_cannot_be_added_changed_or_deleted(
    admin_client, a_request
):
    for model, obj in readonly_objects(a_request):
        assert admin_client.get(reverse(f"admin:reviews_{model}_add")).status_code == 403
        delete = reverse(f"admin:reviews_{model}_delete", args=[obj.pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
        change = reverse(f"admin:reviews_{model}_change", args=[obj.pk])
        page = admin_client.get(change)
        assert page.status_code == 200
        assert b'name="_save"' not in page.content
        assert admin_client.post(change, {"decision": "reject", "actor": "x"}).status_code == 403

    assert a_request.votes.get().decision == "approve"
    assert TransitionRequest.objects.get(pk=a_request.pk).decision == Decision.PENDING
    assert AuditEvent.objects.filter(actor="x").count() == 0
    assert verification.verify().ok


def test_the_audit_list_shows_that_the_chain_holds_or_where_it_breaks(admin_client, a_request):
    url = reverse("admin:reviews_auditevent_changelist")
    last = chain.record("test.event", actor="system").sequence

    intact = admin_client.get(url)
    AuditEvent.objects.filter(sequence=last).update(actor="mallory")
    broken = admin_client.get(url)

    assert f"audit chain intact: {last} events verified".encode() in intact.content
    assert f"audit chain broken at sequence {last}".encode() in broken.content


# -- request actions ---------------------------------------------------------------------------


def run_action(admin_client, action: str, *requests):
    return admin_client.post(
        reverse("admin:reviews_transitionrequest_changelist"),
        {"action": action, "_selected_action": [r.pk for r in requests], "index": "0"},
        follow=True,
    )


def test_retry_action_requeues_a_failed_execution(
    admin_client, a_request, rq_queue, django_capture_on_commit_callbacks
):
    queue = rq_queue(QUEUE)
    TransitionRequest.objects.filter(pk=a_request.pk).update(
        decision=Decision.APPROVED,
        execution=Execution.FAILED,
        execution_error="MLflow answered 503",
        execution_attempts=4,
    )

    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = run_action(admin_client, "retry_failed", a_request)

        assert shown_messages(response) == [f"Re-queued #{a_request.pk}."]
        assert TransitionRequest.objects.get(pk=a_request.pk).execution == Execution.QUEUED
        assert transition_job_id(a_request) in queue.get_job_ids()
        event = AuditEvent.objects.order_by("-sequence").first()
        assert (event.action, event.actor, event.request_id) == (
            "transition.retry",
            "admin",
            a_request.pk,
        )
    finally:
        # Leave no job for another test's worker to pick up.
        rq_queue(QUEUE)


def test_retry_action_refuses_a_request_that_has_not_failed(admin_client, a_request):
    events = AuditEvent.objects.count()

    response = run_action(admin_client, "retry_failed", a_request)

    [message] = shown_messages(response)
    assert message.startswith(f"#{a_request.pk}: Request #{a_request.pk} has no failed transition")
    assert TransitionRequest.objects.get(pk=a_request.pk).execution == Execution.NONE
    assert AuditEvent.objects.count() == events


def test_cancel_action_cancels_pending_requests_and_explains_the_others(
    admin_client, a_request, requester
):
    decided = TransitionRequest.objects.create(
        version=a_request.version,
        target="Staging",
        requester=requester,
        decision=Decision.REJECTED,
        expires_at=timezone.now() + timedelta(days=7),
    )

    response = run_action(admin_client, "cancel_pending", a_request, decided)

    assert shown_messages(response) == [
        f"#{decided.pk}: Request #{decided.pk} is already rejected.",
        f"Cancelled #{a_request.pk}.",
    ]
    assert TransitionRequest.objects.get(pk=a_request.pk).decision == Decision.CANCELLED
    assert TransitionRequest.objects.get(pk=decided.pk).decision == Decision.REJECTED
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor, event.request_id) == (
        "request.cancelled",
        "admin",
        a_request.pk,
    )
    assert verification.verify().ok
