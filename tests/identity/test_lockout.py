"""Failed sign-ins are throttled per user and address together (django-axes, quorum/lockout.py):
the web and admin sign-in pages, unknown API tokens, the lockout page, the admin's unlock, the
address behind reverse proxies, and sign-ins and tokens that must never be counted or refused
because of someone else's failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.utils import timezone

from reviews.api.auth import token_create, token_revoke

pytestmark = pytest.mark.django_db

LIMIT = 10  # QUORUM_LOGIN_FAILURE_LIMIT's default
LOCKED = "Too many failed sign-ins for this account from your address. Try again in 15 minutes"


def sign_in(client, username, password, *, address="127.0.0.1", path="/accounts/login/", **meta):
    return client.post(
        path, {"username": username, "password": password}, REMOTE_ADDR=address, **meta
    )


def fail(client, username, times, **where):
    for _ in range(times):
        response = sign_in(client, username, "wrong", **where)
        assert response.status_code == 200, "a failure below the limit is the usual form error"


def lock_out(client, username, **where):
    fail(client, username, LIMIT - 1, **where)
    assert sign_in(client, username, "wrong", **where).status_code == 429


def signed_in(response) -> bool:
    return response.status_code == 302 and response.url == "/"


def test_the_limit_locks_the_user_out_with_a_clear_message_even_with_the_right_password(
    client, lead
):
    fail(client, "lead", LIMIT - 1)

    locked = sign_in(client, "lead", "wrong")

    assert locked.status_code == 429
    page = locked.content.decode()
    assert LOCKED in page and 'role="alert"' in page
    assert 'name="password"' in page, "the sign-in form is still there for later"
    right = sign_in(client, "lead", "pw")
    assert right.status_code == 429 and LOCKED in right.content.decode()
    assert "_auth_user_id" not in client.session


def test_another_users_failures_from_the_same_address_never_refuse_a_right_password(
    client, scientist1, scientist2
):
    """One office behind one address: scientist1's typos lock scientist1 out, not scientist2."""
    lock_out(client, "scientist1", address="192.0.2.7")
    assert sign_in(client, "scientist1", "wrong", address="192.0.2.7").status_code == 429

    assert signed_in(sign_in(client, "scientist2", "pw", address="192.0.2.7"))
    client.logout()
    still = sign_in(client, "scientist1", "pw", address="192.0.2.7")
    assert still.status_code == 429 and LOCKED in still.content.decode()


def test_guesses_for_many_names_from_one_address_never_refuse_a_right_password(client, lead):
    for n in range(2 * LIMIT):
        sign_in(client, f"nobody{n}", "guess", address="192.0.2.7")

    assert signed_in(sign_in(client, "lead", "pw", address="192.0.2.7"))


def test_a_user_locked_out_from_one_address_still_signs_in_from_another(client, lead):
    """Someone guessing lead's password elsewhere cannot lock lead out of their own desk."""
    lock_out(client, "lead", address="198.51.100.66")

    assert sign_in(client, "lead", "pw", address="198.51.100.66").status_code == 429
    assert signed_in(sign_in(client, "lead", "pw", address="192.0.2.8"))


def test_the_admin_sign_in_is_throttled_too(client, admin_user):
    fail(client, "admin", LIMIT - 1, path="/admin/login/")

    locked = sign_in(client, "admin", "wrong", path="/admin/login/")

    assert locked.status_code == 429
    assert LOCKED in locked.content.decode()
    # One count for both pages: the web sign-in is locked as well.
    assert sign_in(client, "admin", "pw").status_code == 429


def test_the_lockout_ends_after_its_time(client, lead):
    lock_out(client, "lead")
    assert sign_in(client, "lead", "pw").status_code == 429

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert signed_in(sign_in(client, "lead", "pw"))


def test_an_admin_unlocks_a_user_from_the_admin(client, admin_client, lead):
    lock_out(client, "lead")
    attempts = admin_client.get("/admin/axes/accessattempt/")
    assert attempts.status_code == 200 and "lead" in attempts.content.decode()

    [attempt] = AccessAttempt.objects.filter(username="lead")
    response = admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert signed_in(sign_in(client, "lead", "pw"))


def test_axes_reset_username_unlocks_from_the_command_line(client, lead, capsys):
    lock_out(client, "lead")

    call_command("axes_reset_username", "lead")

    assert signed_in(sign_in(client, "lead", "pw"))


def test_successful_sign_ins_are_never_counted(client, lead):
    for _ in range(3 * LIMIT):
        assert signed_in(sign_in(client, "lead", "pw"))
        client.logout()
    assert not AccessAttempt.objects.exists()


def test_code_that_authenticates_without_a_request_is_not_throttled(client, lead):
    """The test client's `login` (and a script's `authenticate`) passes no request."""
    for _ in range(3 * LIMIT):
        assert not client.login(username="lead", password="wrong")
    assert client.login(username="lead", password="pw")
    assert not AccessAttempt.objects.exists()


# -- the client's address behind proxies ---------------------------------------------------------


def test_without_proxies_a_forwarded_header_is_ignored(client, lead):
    sign_in(client, "lead", "wrong", address="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert AccessAttempt.objects.get().ip_address == "198.51.100.1"


def test_behind_a_proxy_the_address_it_saw_is_counted_and_forged_entries_are_not(
    client, lead, settings
):
    settings.QUORUM_PROXY_COUNT = 1
    for n in range(LIMIT):
        # The client forges a different leftmost entry each time; the proxy appends the truth.
        sign_in(
            client,
            "lead",
            "wrong",
            address="10.1.1.1",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.9",
        )

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}
    through_proxy = sign_in(
        client, "lead", "pw", address="10.1.1.1", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert through_proxy.status_code == 429
    other = sign_in(client, "lead", "pw", address="10.1.1.1", HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert signed_in(other), "another client behind the same proxy is not locked out"


def test_two_proxies_count_from_the_right(client, lead, settings):
    settings.QUORUM_PROXY_COUNT = 2
    sign_in(
        client,
        "lead",
        "wrong",
        address="10.0.0.2",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.20, 10.0.0.1",
    )

    assert AccessAttempt.objects.get().ip_address == "203.0.113.20"


# -- API tokens ---------------------------------------------------------------------------------


def api_get(client, token: str, address: str = "127.0.0.1"):
    return client.get(
        "/api/v1/models", headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR=address
    )


def test_unknown_tokens_from_an_address_are_refused_with_a_429_past_the_limit(client, requester):
    for n in range(LIMIT - 1):
        assert api_get(client, f"qrm_guess{n}", "192.0.2.50").status_code == 401

    last = api_get(client, "qrm_guess-last", "192.0.2.50")

    assert last.status_code == 429
    assert last.json()["error"] == "throttled"
    assert "Too many failed tokens from this address" in last.json()["detail"]
    assert last["Retry-After"] == str(15 * 60)
    for n in range(3):
        assert api_get(client, f"qrm_more{n}", "192.0.2.50").status_code == 429
    assert api_get(client, "qrm_elsewhere", "192.0.2.51").status_code == 401


def test_unknown_tokens_never_refuse_a_valid_token_or_a_password(client, requester):
    """The shared address of an office: someone's stale or mistyped tokens, past the limit, do
    not stop a colleague's valid token or sign-in."""
    _, good = token_create(user=requester)
    for n in range(LIMIT + 1):
        api_get(client, f"qrm_guess{n}", "192.0.2.50")
    assert api_get(client, "qrm_guess-again", "192.0.2.50").status_code == 429

    for _ in range(3):
        valid = api_get(client, good, "192.0.2.50")
        assert valid.status_code == 200, valid.content
    assert signed_in(sign_in(client, "requester", "pw", address="192.0.2.50"))
    assert api_get(client, "qrm_guess-after", "192.0.2.50").status_code == 429, "still refused"


def test_revoked_tokens_and_missing_headers_are_not_counted(client, requester):
    token, plaintext = token_create(user=requester)
    token_revoke(token_id=token.pk, actor="admin")
    for _ in range(2 * LIMIT):
        assert api_get(client, plaintext).status_code == 401
        assert client.get("/api/v1/models").status_code == 401

    assert not AccessAttempt.objects.exists()


def test_an_admin_unlocks_an_address_from_the_command_line(client, requester):
    for n in range(LIMIT):
        api_get(client, f"qrm_guess{n}", "192.0.2.60")
    assert api_get(client, "qrm_guess", "192.0.2.60").status_code == 429

    call_command("axes_reset_ip", "192.0.2.60")

    assert api_get(client, "qrm_guess", "192.0.2.60").status_code == 401
