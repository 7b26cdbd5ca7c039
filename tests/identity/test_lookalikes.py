"""People's names that could pass for each other: a first sign-in through the real test OIDC
provider (tests/oidc_provider.py) takes its username normalised, is refused when it is or looks
like an existing account's, and the admin marks a look-alike username as pages mark model names."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from identity.models import ProviderIdentity
from reviews.models import AuditEvent
from tests.pages import signed_in_user

pytestmark = pytest.mark.django_db

CYRILLIC_ALICE = "\u0430lice"  # "аlice": a Cyrillic а, then Latin letters


def refusals() -> list[dict]:
    return [e.details for e in AuditEvent.objects.filter(action="user.refused").order_by("pk")]


@pytest.fixture
def alice():
    """A local account named alice, in ml-leads, linked to no provider subject."""
    user = get_user_model().objects.create_user("alice", password="pw")
    user.groups.add(Group.objects.get_or_create(name="ml-leads")[0])
    return user


def test_a_new_persons_username_is_normalised(client, sso):
    sso.person("Olivia.Ｂrown", ["idp-ml-leads"])  # a fullwidth Ｂ and capitals

    response = sso.sign_in(client, "Olivia.Ｂrown")

    assert response.status_code == 302
    assert signed_in_user(client).username == "olivia.brown"


def test_a_name_that_differs_only_in_case_does_not_take_over_an_existing_account(
    client, sso, alice
):
    sso.person("Alice", ["idp-ml-leads"])  # another subject: sub-Alice

    response = sso.sign_in(client, "Alice")

    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert "A Quorum account named 'alice' already exists and is not linked" in page
    assert signed_in_user(client) is None
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["alice"]
    assert not ProviderIdentity.objects.exists()
    assert refusals() == [
        {
            "issuer": sso.url,
            "subject": "sub-Alice",
            "user": "alice",
            "reason": "taken",
            "existing": "alice",
        }
    ]


def test_the_same_subject_signs_in_to_its_account_whatever_case_its_name_takes(client, sso):
    sso.person("alice", ["idp-ml-leads"], sub="sub-alice")
    sso.sign_in(client, "alice")
    first = signed_in_user(client)
    client.logout()

    sso.person("Alice", ["idp-ml-leads"], sub="sub-alice")  # renamed at the provider
    response = sso.sign_in(client, "Alice")

    assert response.status_code == 302
    assert signed_in_user(client) == first and first.username == "alice"
    assert get_user_model().objects.count() == 1 and not refusals()


def test_a_look_alike_of_an_existing_name_is_refused_and_says_why(client, sso, alice):
    sso.person(CYRILLIC_ALICE, ["idp-ml-leads"])

    response = sso.sign_in(client, CYRILLIC_ALICE)

    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert "Sign-in refused." in page
    assert (
        f"Your username at the provider, '{CYRILLIC_ALICE} (⚠ mixes Cyrillic and Latin "
        "letters)', looks like the existing Quorum account 'alice'"
    ) in page
    assert signed_in_user(client) is None
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["alice"]
    assert list(alice.groups.values_list("name", flat=True)) == ["ml-leads"]
    assert not ProviderIdentity.objects.exists()
    [refused] = refusals()
    assert refused["reason"] == "looks alike" and refused["existing"] == "alice"
    assert refused["user"] == CYRILLIC_ALICE and refused["subject"] == f"sub-{CYRILLIC_ALICE}"
    assert not AuditEvent.objects.filter(action__in=["user.create", "group.members"]).exists()


def test_a_look_alike_hiding_an_invisible_character_is_refused(client, sso, alice):
    sso.person("al\u200bice", [])
    response = sso.sign_in(client, "al\u200bice")
    assert response.status_code == 400
    assert "looks like the existing Quorum account 'alice'" in html.unescape(
        response.content.decode()
    )
    assert get_user_model().objects.count() == 1


def test_a_name_mixing_look_alike_scripts_is_refused_before_its_twin_arrives(client, sso):
    sso.person("m\u0430llory", ["idp-ml-leads"])  # Cyrillic а, no "mallory" yet

    response = sso.sign_in(client, "m\u0430llory")

    assert response.status_code == 400
    assert "could pass for someone else's" in html.unescape(response.content.decode())
    assert not get_user_model().objects.exists()
    assert refusals()[0]["reason"] == "suspicious"


def test_the_admin_marks_a_look_alike_username_in_the_users_list_and_the_members_picker(
    client, admin_user, alice
):
    # An account made before sign-ins were checked, by hand or by an older Quorum.
    twin = get_user_model().objects.create_user(CYRILLIC_ALICE)
    twin.groups.add(Group.objects.get(name="ml-leads"))
    client.force_login(admin_user)

    users = client.get("/admin/auth/user/").content.decode()
    group = Group.objects.get(name="ml-leads")
    members = client.get(f"/admin/auth/group/{group.pk}/change/").content.decode()

    assert users.count('class="name-suspicious"') == 1
    assert "letters that look alike: another person&#x27;s name may look the same." in users
    assert f"{CYRILLIC_ALICE} (⚠ mixes Cyrillic and Latin letters)</option>" in members
    assert ">alice</option>" in members
