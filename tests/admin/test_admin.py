"""The Django admin: who gets in, policy validation on save, read-only pages, audited changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.forms import MultiWidget
from django.urls import reverse
from django.utils import timezone

from registry.models import ModelVersion, RegisteredModel
from reviews.audit import chain, verification
from reviews.execution.jobs import QUEUE, transition_job_id
from reviews.models import (
    ApprovalPolicy,
    AuditEvent,
    Decision,
    Execution,
    TransitionRequest,
    Vote,
)
from reviews.policies.matching import policy_as_spec

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


def page_data(response) -> dict:
    """What the browser would post back from an admin form page, unchanged."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            widget = form.fields[name].widget
            if isinstance(widget, MultiWidget):
                parts = widget.decompress(value)
                assert parts is not None, f"{name}: a split field decompresses to its parts"
                for index, part in enumerate(parts):
                    data[f"{form.add_prefix(name)}_{index}"] = widget.widgets[index].format_value(
                        part
                    )
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


def errors_of(response) -> list[str]:
    assert response.status_code == 200, "an invalid form is shown again, not saved"
    form = response.context["adminform"].form
    errors = [error for field_errors in form.errors.values() for error in field_errors]
    for inline in response.context["inline_admin_formsets"]:
        errors.extend(inline.formset.non_form_errors())
        for row in inline.formset.forms:
            errors.extend(error for field_errors in row.errors.values() for error in field_errors)
    return errors


def group_id(name: str) -> int:
    return Group.objects.get(name=name).pk


def new_policy_data(admin_client, **changes) -> dict:
    """The add form filled in for a valid fraud-* → Production policy, then `changes`."""
    data = page_data(admin_client.get(reverse("admin:reviews_approvalpolicy_add")))
    data.update(
        {
            "name": "fraud",
            "model_patterns": "fraud-*, fraud",
            "targets": "Production, @champion",
            "expires_after": "3d",
            "rejections_needed": "1",
            "requirements-0-group": group_id("data-science"),
            "requirements-0-approvals": "2",
        }
    )
    data.update(changes)
    return data


def add_gate(data: dict, **fields) -> dict:
    index = int(data["gates-TOTAL_FORMS"])
    data["gates-TOTAL_FORMS"] = str(index + 1)
    data.update({f"gates-{index}-{name}": value for name, value in fields.items()})
    return data


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


def test_non_staff_post_to_the_policy_form_changes_nothing(client, admin_client, policies):
    data = new_policy_data(admin_client)
    client.force_login(policies["outsider"])
    events = AuditEvent.objects.count()

    response = client.post(reverse("admin:reviews_approvalpolicy_add"), data)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert not ApprovalPolicy.objects.filter(name="fraud").exists()
    assert AuditEvent.objects.count() == events


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


# -- policies ----------------------------------------------------------------------------------


def test_a_valid_policy_is_saved_with_its_sign_offs_and_gates_and_audited(admin_client, policies):
    data = new_policy_data(admin_client)
    data["requirements-TOTAL_FORMS"] = "2"
    data.update({"requirements-1-group": group_id("ml-leads"), "requirements-1-approvals": "1"})
    add_gate(data, metric="accuracy", op=">=", value="0.85", kind="required")
    add_gate(data, metric="f1", op=">=", baseline_delta="-0.01", kind="required")
    data["requesters"] = [group_id("ml-leads"), group_id("data-science")]

    response = admin_client.post(reverse("admin:reviews_approvalpolicy_add"), data)

    assert response.status_code == 302, errors_of(response)
    policy = ApprovalPolicy.objects.get(name="fraud")
    spec = policy_as_spec(policy)
    assert spec.requesters == ["data-science", "ml-leads"]  # in the groups' order
    assert spec.models == ["fraud-*", "fraud"]
    assert spec.targets == ["Production", "@champion"]
    assert spec.expires_after == timedelta(days=3)
    assert [(r.group, r.approvals) for r in spec.require] == [
        ("data-science", 2),
        ("ml-leads", 1),
    ]
    assert [(g.metric, g.value, g.baseline_delta) for g in spec.gates] == [
        ("accuracy", 0.85, None),
        ("f1", None, -0.01),
    ]
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor) == ("policy.create", "admin")
    assert event.details == spec.model_dump(mode="json")
    assert verification.verify().ok


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"requirements-0-group": "999999"}, "Select a valid choice"),
        (
            {"requirements-0-group": "ml-leads-id", "requirements-0-approvals": "2"},
            "2 but group 'ml-leads' has 1 member",
        ),
        (
            {"targets": "Prod"},
            "'Prod' is not a stage (None, Staging, Production, Archived) or an @alias",
        ),
        ({"targets": "Production, @latest"}, "'@latest' is not a stage"),
        ({"targets": ","}, "List should have at least 1 item"),
        ({"model_patterns": ""}, "This field is required."),
        ({"expires_after": "7 weeks"}, "'7 weeks' is not a duration like 7d, 12h or 30m"),
        (
            {"expires_after": "3000000d"},
            "'3000000d' is longer than the longest duration allowed, 365d",
        ),
        ({"expires_after": "9999999999d"}, "is longer than the longest duration allowed"),
        ({"rejections_needed": "40000"}, "less than or equal to 32767"),
        ({"rejections_needed": "0"}, "greater than or equal to 1"),
        ({"requirements-0-approvals": "0"}, "greater than or equal to 1"),
        (
            {"requirements-0-group": "", "requirements-0-approvals": "1"},
            "A policy needs at least one required group.",
        ),
        (
            {"model_patterns": "*", "targets": "Staging"},
            "as specific as policy 'staging' for models * and target Staging",
        ),
    ],
)
def test_an_invalid_policy_shows_the_problem_and_changes_nothing(
    admin_client, policies, changes, message
):
    if changes.get("requirements-0-group") == "ml-leads-id":
        changes["requirements-0-group"] = group_id("ml-leads")
    data = new_policy_data(admin_client, **changes)
    if data["requirements-0-group"] == "":
        del data["requirements-0-group"]
    events = AuditEvent.objects.count()

    response = admin_client.post(reverse("admin:reviews_approvalpolicy_add"), data)

    assert any(message in error for error in errors_of(response)), errors_of(response)
    assert not ApprovalPolicy.objects.filter(name="fraud").exists()
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(
    "gate, message",
    [
        (
            {"metric": "accuracy", "op": ">=", "value": "0.8", "baseline_delta": "-0.1"},
            "give exactly one of value (a fixed threshold) or baseline_delta",
        ),
        ({"metric": "accuracy", "op": ">="}, "give exactly one of value"),
        ({"metric": "accuracy", "op": "=>", "value": "0.8"}, "Select a valid choice"),
        ({"metric": "", "op": ">=", "value": "0.8"}, "This field is required."),
        ({"metric": "accuracy", "op": ">=", "value": "nan"}, "Enter a number."),
        ({"metric": "accuracy", "op": ">=", "baseline_delta": "-inf"}, "Enter a number."),
    ],
)
def test_an_invalid_gate_shows_the_problem_and_changes_nothing(
    admin_client, policies, gate, message
):
    data = add_gate(new_policy_data(admin_client), kind="required", **gate)

    response = admin_client.post(reverse("admin:reviews_approvalpolicy_add"), data)

    assert any(message in error for error in errors_of(response)), errors_of(response)
    assert not ApprovalPolicy.objects.filter(name="fraud").exists()


def change_page(admin_client, name: str) -> tuple[str, dict]:
    url = reverse(
        "admin:reviews_approvalpolicy_change", args=[ApprovalPolicy.objects.get(name=name).pk]
    )
    return url, page_data(admin_client.get(url))


def test_an_invalid_edit_leaves_the_policy_as_it_was(admin_client, policies):
    before = policy_as_spec(ApprovalPolicy.objects.get(name="production"))
    url, data = change_page(admin_client, "production")
    # Row 1 is data-science (3 members).
    assert data["requirements-1-group"] == group_id("data-science")
    data["requirements-1-approvals"] = "4"
    data["gates-0-value"] = "0.5"

    response = admin_client.post(url, data)

    assert "4 but group 'data-science' has 3 members" in errors_of(response)
    assert policy_as_spec(ApprovalPolicy.objects.get(name="production")) == before


def test_a_valid_edit_is_saved_and_audited_with_the_new_spec(admin_client, policies):
    url, data = change_page(admin_client, "production")
    data["targets"] = "Production"
    data["requirements-1-approvals"] = "3"
    data["gates-1-DELETE"] = "on"

    response = admin_client.post(url, data)

    assert response.status_code == 302, errors_of(response)
    spec = policy_as_spec(ApprovalPolicy.objects.get(name="production"))
    assert spec.targets == ["Production"]
    assert [(r.group, r.approvals) for r in spec.require] == [
        ("ml-leads", 1),
        ("data-science", 3),
    ]
    assert [g.metric for g in spec.gates] == ["accuracy"]
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor, event.details) == (
        "policy.edit",
        "admin",
        spec.model_dump(mode="json"),
    )


OVERLAP_WARNING = (
    "Policy 'production': ml-leads and data-science share lead. A person counts for one group "
    "only, so its sign-offs need 3 different people."
)


def test_saving_a_policy_whose_groups_share_members_warns_and_saves(admin_client, policies):
    Group.objects.get(name="data-science").user_set.add(policies["lead"])
    url, data = change_page(admin_client, "production")
    data["requirements-1-approvals"] = "3"
    data["requirements-0-approvals"] = "1"

    response = admin_client.post(url, data, follow=True)

    assert response.redirect_chain, "saved, not refused"
    assert OVERLAP_WARNING.replace("3 different", "4 different") in shown_messages(response)
    spec = policy_as_spec(ApprovalPolicy.objects.get(name="production"))
    assert [(r.group, r.approvals) for r in spec.require] == [("ml-leads", 1), ("data-science", 3)]


def test_saving_a_policy_whose_groups_share_nobody_does_not_warn(admin_client, policies):
    url, data = change_page(admin_client, "production")

    response = admin_client.post(url, data, follow=True)

    assert not [m for m in shown_messages(response) if "share" in m]


def test_saving_an_unchanged_policy_records_nothing(admin_client, policies):
    url, data = change_page(admin_client, "production")
    events = AuditEvent.objects.count()

    response = admin_client.post(url, data)

    assert response.status_code == 302, errors_of(response)
    assert AuditEvent.objects.count() == events


def test_who_may_request_is_edited_audited_and_shown_back_on_the_form(admin_client, policies):
    url, data = change_page(admin_client, "production")
    assert not data.get("requesters")
    data["requesters"] = [group_id("ml-leads")]

    response = admin_client.post(url, data)

    assert response.status_code == 302, errors_of(response)
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.details["requesters"]) == ("policy.edit", ["ml-leads"])
    url, data = change_page(admin_client, "production")
    assert data["requesters"] == [group_id("ml-leads")]
    events = AuditEvent.objects.count()
    assert admin_client.post(url, data).status_code == 302
    assert AuditEvent.objects.count() == events  # unchanged: nothing recorded
    listed = admin_client.get(reverse("admin:reviews_approvalpolicy_changelist"))
    assert "anyone signed in" in listed.content.decode()  # the staging policy


def test_deleting_a_policy_is_audited_with_what_it_was(admin_client, policies):
    policy = ApprovalPolicy.objects.get(name="staging")
    spec = policy_as_spec(policy)

    response = admin_client.post(
        reverse("admin:reviews_approvalpolicy_delete", args=[policy.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not ApprovalPolicy.objects.filter(name="staging").exists()
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor, event.details) == (
        "policy.delete",
        "admin",
        spec.model_dump(mode="json"),
    )


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


# -- groups and members ------------------------------------------------------------------------


def group_page(admin_client, name: str) -> tuple[str, dict]:
    url = reverse("admin:auth_group_change", args=[group_id(name)])
    return url, page_data(admin_client.get(url))


def member_ids(*names: str) -> list[int]:
    from django.contrib.auth.models import User

    return list(User.objects.filter(username__in=names).values_list("pk", flat=True))


def members(name: str) -> set[str]:
    return set(Group.objects.get(name=name).user_set.values_list("username", flat=True))


def test_group_members_are_edited_on_the_group_page_and_audited(admin_client, policies):
    url, data = group_page(admin_client, "data-science")
    data["users"] = member_ids("scientist1", "scientist2", "lead")

    response = admin_client.post(url, data)

    assert response.status_code == 302, errors_of(response)
    assert members("data-science") == {"scientist1", "scientist2", "lead"}
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor, event.details) == (
        "group.members",
        "admin",
        {"group": "data-science", "added": ["lead"], "removed": ["scientist3"]},
    )


def test_a_member_added_to_a_second_required_group_is_warned_about(admin_client, policies):
    url, data = group_page(admin_client, "data-science")
    data["users"] = member_ids("scientist1", "scientist2", "scientist3", "lead")

    response = admin_client.post(url, data, follow=True)

    assert members("data-science") == {"scientist1", "scientist2", "scientist3", "lead"}
    assert OVERLAP_WARNING in shown_messages(response)


def test_membership_added_from_a_users_page_is_warned_about_too(admin_client, policies):
    lead = policies["lead"]
    url = reverse("admin:auth_user_change", args=[lead.pk])
    data = page_data(admin_client.get(url))
    data["groups"] = [group_id("ml-leads"), group_id("data-science")]

    response = admin_client.post(url, data, follow=True)

    assert OVERLAP_WARNING in shown_messages(response)


def test_removing_members_a_policy_needs_is_refused(admin_client, policies):
    url, data = group_page(admin_client, "data-science")
    data["users"] = member_ids("scientist1")
    events = AuditEvent.objects.count()

    response = admin_client.post(url, data)

    assert (
        "Policy 'production' needs 2 approvals from this group, which would have 1 active member."
        in errors_of(response)
    )
    assert members("data-science") == {"scientist1", "scientist2", "scientist3"}
    assert AuditEvent.objects.count() == events


def test_a_new_group_with_members_is_audited(admin_client, policies):
    data = page_data(admin_client.get(reverse("admin:auth_group_add")))
    data.update({"name": "risk", "users": member_ids("outsider", "requester")})

    response = admin_client.post(reverse("admin:auth_group_add"), data)

    assert response.status_code == 302, errors_of(response)
    assert members("risk") == {"outsider", "requester"}
    actions = list(AuditEvent.objects.order_by("-sequence")[:2].values_list("action", "details"))
    assert actions == [
        ("group.members", {"group": "risk", "added": ["outsider", "requester"], "removed": []}),
        ("group.create", {"group": "risk"}),
    ]


def test_membership_changed_from_a_users_page_is_audited_too(admin_client, policies):
    outsider = policies["outsider"]
    url = reverse("admin:auth_user_change", args=[outsider.pk])
    data = page_data(admin_client.get(url))
    data["groups"] = [group_id("ml-leads")]

    response = admin_client.post(url, data)

    assert response.status_code == 302, errors_of(response)
    assert "outsider" in members("ml-leads")
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor, event.details) == (
        "group.members",
        "admin",
        {"group": "ml-leads", "added": ["outsider"], "removed": []},
    )


def provider_manages(settings, group_map: str = "idp-leads=ml-leads") -> None:
    settings.OIDC_ISSUER = "https://idp.example.com"
    settings.QUORUM_OIDC_GROUP_MAP = group_map


def test_groups_managed_by_the_provider_are_marked_and_their_members_not_edited(
    admin_client, policies, settings
):
    provider_manages(settings)
    listing = admin_client.get(reverse("admin:auth_group_changelist")).content.decode()
    assert "identity provider" in listing
    url, data = group_page(admin_client, "ml-leads")
    data["users"] = member_ids("lead", "outsider")
    events = AuditEvent.objects.count()

    admin_client.post(url, data)

    assert members("ml-leads") == {"lead"}
    assert AuditEvent.objects.count() == events


def test_a_managed_group_cannot_be_joined_from_a_users_page(admin_client, policies, settings):
    provider_manages(settings)
    outsider = policies["outsider"]
    url = reverse("admin:auth_user_change", args=[outsider.pk])
    data = page_data(admin_client.get(url))
    data["groups"] = [group_id("ml-leads")]

    response = admin_client.post(url, data)

    assert any("managed by the identity provider" in e for e in errors_of(response))
    assert "outsider" not in members("ml-leads")


# -- request actions ---------------------------------------------------------------------------


def run_action(admin_client, action: str, *requests):
    return admin_client.post(
        reverse("admin:reviews_transitionrequest_changelist"),
        {"action": action, "_selected_action": [r.pk for r in requests], "index": "0"},
        follow=True,
    )


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


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
