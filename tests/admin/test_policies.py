"""Policies in the Django admin (reviews/admin/policies.py): a non-staff post refused, validation
on save with the problem shown and nothing changed, edits and deletions audited, and groups that
share members warned about."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from reviews.audit import verification
from reviews.models import ApprovalPolicy, AuditEvent
from reviews.policies.matching import policy_as_spec
from tests.pages import OVERLAP_WARNING, errors_of, group_id, page_data, shown_messages

pytestmark = pytest.mark.django_db


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


def test_non_staff_post_to_the_policy_form_changes_nothing(client, admin_client, policies):
    data = new_policy_data(admin_client)
    client.force_login(policies["outsider"])
    events = AuditEvent.objects.count()

    response = client.post(reverse("admin:reviews_approvalpolicy_add"), data)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert not ApprovalPolicy.objects.filter(name="fraud").exists()
    assert AuditEvent.objects.count() == events


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
