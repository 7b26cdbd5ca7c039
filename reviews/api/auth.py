"""API tokens: issuing, revoking, and the bearer authentication of the REST API.

Besides Quorum's own tokens, the bearer may be a workload identity token (a JWT) from an issuer
that QUORUM_CI_ISSUERS trusts, such as GitHub Actions' OIDC token: it acts as the service user
its claims map to (identity/workload.py).

A token is `qrm_` followed by a random secret. Only its SHA-256 is stored, so a copy of the
database cannot be used to call the API; the plaintext is shown once, by `create_api_token`. A
token acts as its user with that user's permissions: the review engine checks them as it does for
the browser. Issuing and revoking a token are appended to the audit chain.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from identity.tokens import TokenRefused
from identity.workload import looks_like_jwt, user_for_workload_token
from infra.http import AuthenticatedHttpRequest

from ..audit import chain
from ..models import ApiToken

TOKEN_PREFIX = "qrm_"  # noqa: S105 - a marker, not a secret
# Enough of the token to tell tokens apart in the admin, far too little to guess the rest.
DISPLAY_CHARS = len(TOKEN_PREFIX) + 6
# Writing last_used_at on every call would make each API read a write; once a minute is plenty
# to tell a live token from a forgotten one.
LAST_USED_RESOLUTION_SECONDS = 60
# How the sign-in throttle (django-axes, quorum/lockout.py) sees a token: no username, so its
# failures count under an empty username at their address, apart from every person's sign-ins.
# The token itself is never passed on.
TOKEN_CREDENTIALS = {"bearer_token": "(not shown)"}  # noqa: S105 - a marker, not a secret


class Unauthorized(Exception):
    """No usable token: answered with 401 and `{"error": "unauthorized", "detail": ...}`."""

    code = "unauthorized"
    status = 401


class UnknownToken(Unauthorized):
    """A token that was never issued: a guess, counted against its address."""


class Throttled(Exception):
    """An unknown token from an address past its limit of unknown tokens: answered with 429."""


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


@transaction.atomic
def token_create(*, user: User, name: str = "api", actor=None) -> tuple[ApiToken, str]:
    """Issues a token for `user`; returns the row and the plaintext, which is not stored."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, token_hash=token_hash(plaintext), prefix=plaintext[:DISPLAY_CHARS]
    )
    chain.record(
        "api_token.created",
        actor=actor if actor is not None else "system",
        details={"user": user.get_username(), "name": name, "prefix": token.prefix},
    )
    return token, plaintext


@transaction.atomic
def token_revoke(*, token_id: int, actor) -> bool:
    """Revokes a token at once; False when it was already revoked (nothing recorded then)."""
    token = ApiToken.objects.select_for_update().select_related("user").get(pk=token_id)
    if token.revoked_at is not None:
        return False
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    chain.record(
        "api_token.revoked",
        actor=actor,
        details={"user": token.user.get_username(), "name": token.name, "prefix": token.prefix},
    )
    return True


def user_for_token(plaintext: str) -> User:
    """The active user a live token acts as; raises `Unauthorized` otherwise."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=token_hash(plaintext.strip()))
        .first()
    )
    if token is None:
        raise UnknownToken("The token is not valid.")
    if token.revoked_at is not None:
        raise Unauthorized("The token was revoked.")
    if not token.user.is_active:
        raise Unauthorized("The token's user is deactivated.")
    now = timezone.now()
    stale_before = now - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
    if token.last_used_at is None or token.last_used_at < stale_before:
        # An UPDATE, not a save: concurrent calls with one token must not contend on a lock.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


class ApiRequest(AuthenticatedHttpRequest):
    """What an endpoint behind `BearerToken` receives: ninja sets `auth` to the token's user."""

    auth: User


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>`; every failure says why, as a 401.

    A token is always checked, and a valid one accepted, whatever else came from its address.
    Tokens nobody issued (and forged workload tokens) are counted per address by the sign-in
    throttle (quorum/lockout.py): past its limit, the address's unknown tokens get 429 instead
    of 401 until the lockout ends or an admin lifts it. Revoked and deactivated users' tokens
    are not guesses and are not counted.
    """

    openapi_bearerFormat = "qrm_ token or JWT"
    openapi_description = (
        "Either a Quorum API token (`qrm_...`, from `manage.py create_api_token USER`), or a "
        "workload identity token (a JWT, e.g. GitHub Actions' OIDC token) from an issuer listed "
        "in QUORUM_CI_ISSUERS: verified against the issuer's published keys, with its audience "
        "and expiry checked, and acting as the service user its claims map to."
    )

    def __call__(self, request: HttpRequest):
        header = request.headers.get(self.header, "")
        scheme, _, credentials = header.partition(" ")
        if not header:
            raise Unauthorized("Send the header 'Authorization: Bearer <token>'.")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
        return self.authenticate(request, credentials)

    def authenticate(self, request: HttpRequest, token: str) -> User:
        token = token.strip()
        if not token.startswith(TOKEN_PREFIX) and looks_like_jwt(token):
            user = self.authenticate_workload(request, token)
            request.user = user
            return user
        try:
            user = user_for_token(token)
        except UnknownToken:
            count_guess(request)
            raise
        # The services take the user explicitly; request.user keeps Django's views consistent.
        request.user = user
        return user

    def authenticate_workload(self, request: HttpRequest, token: str) -> User:
        try:
            return user_for_workload_token(token)
        except TokenRefused as refusal:
            if refusal.forged:
                # Forgeries count like guessed tokens; an expired or misaddressed real token
                # is a CI misconfiguration and does not lock out the runners' address.
                count_guess(request)
            raise Unauthorized(str(refusal)) from None


def count_guess(request: HttpRequest) -> None:
    """A token nobody issued: refused with `Throttled` while its address is past the limit of
    such tokens, else counted as a failed sign-in (the one that reaches the limit is answered
    429 by django-axes' middleware)."""
    if AxesProxyHandler.is_locked(request, TOKEN_CREDENTIALS):
        raise Throttled()
    user_login_failed.send(__name__, credentials=dict(TOKEN_CREDENTIALS), request=request)
