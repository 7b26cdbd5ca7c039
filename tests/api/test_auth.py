"""Bearer tokens on /api/v1: refused without a valid one, acting as their user, issued by
`create_api_token` and revoked in the admin."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command

from reviews.api.auth import token_create
from reviews.models import ApiToken, AuditEvent, TransitionRequest
from tests.pages import Api, create, refused

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "header",
    [None, "Bearer qrm_not-a-token", "Token abc", "Bearer ", "Basic dXNlcjpwdw=="],
    ids=["missing", "wrong", "other-scheme", "empty", "basic"],
)
def test_requests_without_a_valid_token_are_401(fraud, client, header):
    headers = {"Authorization": header} if header else {}
    for response in (
        client.get("/api/v1/models", headers=headers),
        client.post(
            "/api/v1/requests",
            {"model": "fraud-detector", "version": 2, "target": "Staging"},
            content_type="application/json",
            headers=headers,
        ),
    ):
        refused(response, 401, "unauthorized")
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert not TransitionRequest.objects.exists()


def test_a_revoked_token_or_deactivated_user_is_401(fraud, requester, client):
    from reviews.api.auth import token_revoke

    token, plaintext = token_create(user=requester)
    api = Api(client, token=plaintext)
    assert api.get("/models").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None

    token_revoke(token_id=token.pk, actor="admin")
    assert "revoked" in refused(api.get("/models"), 401, "unauthorized")

    _, other = token_create(user=requester)
    requester.is_active = False
    requester.save()
    refused(Api(client, token=other).get("/models"), 401, "unauthorized")


def test_the_api_acts_as_the_tokens_user(fraud, requester, lead, as_user):
    """A lead's token votes as the lead; the requester's token cannot approve its own request."""
    request_id = create(as_user(requester)).json()["id"]
    as_user(lead).post(f"/requests/{request_id}/votes", {"decision": "approve"})
    assert TransitionRequest.objects.get().votes.get().user == lead


def test_create_api_token_prints_a_working_token_stored_only_hashed(fraud, requester, client):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_token", "requester", "--name", "ci", stdout=out, stderr=err)

    plaintext = out.getvalue().strip()
    assert plaintext.startswith("qrm_") and len(plaintext) > 40
    assert "shown once" in err.getvalue()
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (requester, "ci")
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert all(plaintext not in str(value) for value in ApiToken.objects.values().get().values())
    assert not AuditEvent.objects.filter(details__icontains=plaintext).exists()
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.details == {"user": "requester", "name": "ci", "prefix": token.prefix}
    assert Api(client, token=plaintext).get("/models").status_code == 200


def test_create_api_token_refuses_unknown_users(db):
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("create_api_token", "ghost", stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_admin_lists_and_revokes_tokens_with_an_audit_event(fraud, requester, admin_user, client):
    token, plaintext = token_create(user=requester, name="ci")
    client.force_login(admin_user)

    listing = client.get("/admin/reviews/apitoken/")
    assert listing.status_code == 200
    assert token.prefix in listing.content.decode()
    assert plaintext not in listing.content.decode()

    response = client.post(
        "/admin/reviews/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert (event.actor, event.details["prefix"]) == ("admin", token.prefix)
    client.logout()
    refused(Api(client, token=plaintext).get("/models"), 401, "unauthorized")
