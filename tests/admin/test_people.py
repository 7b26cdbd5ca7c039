"""Groups and their members in the Django admin (reviews/admin/people.py): edited on the group page
or a user's page and audited, a person in a second required group warned about, a member a policy
needs kept, and groups the identity provider manages left to it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from reviews.models import AuditEvent
from tests.pages import OVERLAP_WARNING, errors_of, group_id, page_data, shown_messages

pytestmark = pytest.mark.django_db


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
