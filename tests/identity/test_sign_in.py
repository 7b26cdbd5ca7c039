"""Signing in through a real OpenID Connect provider (tests/oidc_provider.py, its own process):
the round trip, the groups it brings, and every way a sign-in is refused.

Django's test client plays the browser on Quorum's side; the provider is reached over HTTP for
its sign-in form, token, userinfo, keys and logout, as in production.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model

from identity.models import ProviderIdentity
from reviews.decisions import opening, voting
from reviews.decisions.counting import progress
from reviews.errors import NotEligible
from reviews.models import AuditEvent
from reviews.policies.loading import policies_load
from tests.factories import GOOD, make_mirror
from tests.pages import signed_in_user

pytestmark = pytest.mark.django_db

MANAGED_POLICIES = """
policies:
  - name: production
    models: ["*"]
    targets: [Production]
    require: [{group: ml-leads, approvals: 2}]
"""


def test_sign_in_creates_the_person_with_their_groups_and_lands_where_they_came_from(client, sso):
    sso.person("olivia", ["idp-ml-leads", "idp-ds-vision", "unrelated"], email="o@example.com")

    response = sso.sign_in(client, "olivia", next_url="/reviews/7/")

    assert response.status_code == 302
    assert response["Location"] == "/reviews/7/"
    user = signed_in_user(client)
    assert user.username == "olivia" and user.email == "o@example.com"
    assert sorted(user.groups.values_list("name", flat=True)) == ["data-science", "ml-leads"]
    assert not user.has_usable_password()
    link = ProviderIdentity.objects.get(user=user)
    assert (link.issuer, link.subject) == (sso.url, "sub-olivia")
    members = AuditEvent.objects.filter(action="group.members", actor="identity-provider")
    assert {e.details["group"] for e in members} == {"ml-leads", "data-science"}
    [authorize] = [e for e in sso.log() if e["event"] == "authorize"][-1:]
    assert authorize["code_challenge_method"] == "S256" and authorize["nonce"]


def test_a_group_removed_at_the_provider_is_lost_at_the_next_sign_in_and_votes_stay(
    client, sso, cast
):
    policies_load(text=MANAGED_POLICIES)
    sso.person("olivia", ["idp-ml-leads"])
    sso.sign_in(client, "olivia")
    olivia = signed_in_user(client)
    make_mirror(versions={1: ("Production", GOOD), 2: ("None", GOOD), 3: ("None", GOOD)})
    first = opening.request_create(
        model="fraud-detector", version=2, target="Production", requester=cast["requester"]
    )
    voting.vote_cast(request_id=first.pk, user=olivia, decision="approve")

    sso.person("olivia", [])
    client.logout()
    sso.sign_in(client, "olivia")

    assert not olivia.groups.filter(name="ml-leads").exists()
    removed = AuditEvent.objects.filter(action="group.members").latest("sequence")
    assert removed.details["removed"] == ["olivia"] and removed.actor == "identity-provider"
    # The approval she gave while in the group still counts.
    assert progress(first)[0].approvers == ("olivia",)
    second = opening.request_create(
        model="fraud-detector", version=3, target="Production", requester=cast["requester"]
    )
    with pytest.raises(NotEligible):
        voting.vote_cast(request_id=second.pk, user=olivia, decision="approve")


def test_staff_flag_follows_the_staff_group(client, sso):
    sso.person("ada", ["idp-admins"])
    sso.sign_in(client, "ada")
    assert signed_in_user(client).is_staff
    sso.person("ada", [])
    client.logout()
    sso.sign_in(client, "ada")
    assert not get_user_model().objects.get(username="ada").is_staff
    assert AuditEvent.objects.filter(action="user.staff").count() == 2


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("forged", "signature does not verify"),
        ("expired", "The token expired at"),
        ("wrong_nonce", "nonce is not the one this sign-in sent"),
        ("wrong_audience", "is for audience 'some-other-application', not 'quorum'"),
        ("wrong_issuer", "was issued by 'https://impostor.example.com'"),
    ],
)
def test_a_bad_id_token_is_refused_with_the_reason(client, sso, mode, reason):
    sso.person("mallory", ["idp-ml-leads"])
    sso.misbehave(mode)

    response = sso.sign_in(client, "mallory")

    assert response.status_code == 400
    assert html.escape(reason) in response.content.decode()
    assert signed_in_user(client) is None
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_a_wrong_state_is_refused(client, sso):
    sso.person("mallory", ["idp-ml-leads"])
    redirect = client.get("/oidc/authenticate/")
    back = urlparse(sso.authorize(redirect["Location"], "mallory"))
    code = parse_qs(back.query)["code"][0]

    response = client.get(back.path, {"code": code, "state": "not-the-state-we-sent"})

    assert response.status_code == 400
    assert "state does not match" in response.content.decode()
    assert signed_in_user(client) is None


def test_a_callback_not_started_in_this_browser_is_refused(client, sso):
    response = client.get("/oidc/callback/", {"code": "x", "state": "y"})
    assert response.status_code == 400
    assert "not started in this browser" in response.content.decode()


def test_an_existing_local_account_is_not_taken_over(client, sso, cast):
    sso.person("lead", ["idp-ml-leads"])
    response = sso.sign_in(client, "lead")
    assert response.status_code == 400
    assert "already exists and is not linked" in response.content.decode()
    assert signed_in_user(client) is None


def test_sign_out_ends_the_provider_session_too(client, sso):
    sso.person("olivia", [])
    sso.sign_in(client, "olivia")

    response = client.post("/accounts/logout/")

    assert signed_in_user(client) is None
    location = urlparse(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == sso.url + "/logout"
    query = parse_qs(location.query)
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    assert query["id_token_hint"][0].count(".") == 2


def test_the_login_page_offers_the_provider_and_keeps_the_next_page(client, sso):
    page = client.get("/accounts/login/", {"next": "/reviews/3/"}).content.decode()
    assert "Sign in with Test IdP" in page
    assert 'href="/oidc/authenticate/?next=/reviews/3/"' in page


def test_without_a_provider_there_is_no_button_and_no_provider_sign_in(client, settings):
    settings.OIDC_ISSUER = ""
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with" not in page and 'name="password"' in page
    assert client.get("/oidc/authenticate/").status_code == 404


def test_a_provider_that_is_down_gets_a_clear_message(client, settings):
    from identity import provider

    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens on the discard port
    provider.forget()
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 502
    assert "The identity provider is unavailable" in response.content.decode()


@pytest.mark.parametrize(
    "mode, lead_ok, admin_ok",
    [("on", True, True), ("superusers", False, True), ("off", False, False)],
)
def test_password_sign_in_can_be_limited_to_break_glass_or_switched_off(
    client, settings, cast, mode, lead_ok, admin_ok
):
    settings.QUORUM_PASSWORD_LOGIN = mode
    for username, allowed in (("lead", lead_ok), ("admin", admin_ok)):
        client.post("/accounts/login/", {"username": username, "password": "pw"})
        assert (signed_in_user(client) is not None) is allowed, username
        client.logout()
    page = client.get("/accounts/login/").content.decode()
    assert ('name="password"' in page) is (mode != "off")


def test_the_login_page_says_what_the_link_opens_and_nothing_the_link_did_not_show(client, pending):
    page = text_of_login(client, f"/reviews/{pending.pk}/")
    assert f"Sign in to review request #{pending.pk}." in page
    # The request's model and target stay behind the sign-in: ids are easy to guess.
    assert pending.version.model.name not in page and "Production" not in page

    assert "Sign in to open fraud v5." in text_of_login(client, "/models/fraud/versions/5/")
    assert "Sign in to open your review inbox." in text_of_login(client, "/reviews/")
    for elsewhere in ("https://evil.example/reviews/1/", "//evil.example/reviews/1/", "/nowhere/"):
        page = text_of_login(client, elsewhere)
        assert "Sign in to " not in page and "Review and sign off model promotions." in page


def text_of_login(client, next_url: str) -> str:
    return html.unescape(client.get("/accounts/login/", {"next": next_url}).content.decode())


def test_a_hostile_model_name_in_the_link_is_shown_as_text(client, db):
    page = client.get(
        "/accounts/login/", {"next": "/models/<img src=x onerror=alert(1)>/versions/1/"}
    ).content.decode()
    assert "<img src=x" not in page
    assert "Sign in to open &lt;img src=x onerror=alert(1)&gt; v1." in page
