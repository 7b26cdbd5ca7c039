"""Authentication backends: local passwords (as far as QUORUM_PASSWORD_LOGIN allows) and the
OpenID Connect provider's sign-ins (mozilla-django-oidc's code flow, with Quorum's checks).

The provider backend reads its endpoints from the issuer's discovery document instead of five
settings, checks the ID token's signature, issuer, audience, expiry and nonce (the library
checks signature and nonce only), finds the person by their subject, and applies their groups
(identity/membership.py). While OIDC_ISSUER is unset it does nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from . import provider, tokens
from .membership import SignInRefused, sign_in_apply


class PasswordBackend(ModelBackend):
    """Django's password check, for the people QUORUM_PASSWORD_LOGIN still lets in."""

    def user_can_authenticate(self, user) -> bool:
        mode = settings.QUORUM_PASSWORD_LOGIN
        if mode == "off" or (mode == "superusers" and not user.is_superuser):
            return False
        return super().user_can_authenticate(user)


# The library's setting names, answered from the issuer's discovery document.
DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def discovered_setting(attr: str, *default):
    if attr in DISCOVERED:
        return provider.endpoint(settings.OIDC_ISSUER, DISCOVERED[attr])
    return import_from_settings(attr, *default)


class ProviderBackend(OIDCAuthenticationBackend):
    def __init__(self, *args, **kwargs):
        # The library reads every endpoint here; ours are read when a sign-in needs them, so a
        # Quorum without a provider (or with one that is down) still starts.
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    def get_settings(self, attr, *args):  # the library calls it on the instance
        return discovered_setting(attr, *args)

    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce: a password form posted to a URL that happens
        # to carry ?code= is not a provider sign-in.
        if not settings.OIDC_ISSUER or request is None or "nonce" not in kwargs:
            return None
        self.OIDC_OP_TOKEN_ENDPOINT = self.get_settings("OIDC_OP_TOKEN_ENDPOINT")
        self.OIDC_OP_USER_ENDPOINT = self.get_settings("OIDC_OP_USER_ENDPOINT")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        """The ID token's claims once signature, issuer, audience, expiry and nonce check out;
        raises `TokenRefused` with the reason otherwise."""
        if not token:
            raise tokens.TokenRefused("The provider sent no ID token.")
        claims = tokens.verify(
            token, issuer=settings.OIDC_ISSUER, audience=settings.OIDC_RP_CLIENT_ID
        )
        if claims.get("nonce") != kwargs.get("nonce"):
            raise tokens.TokenRefused(
                "The ID token's nonce is not the one this sign-in sent: it belongs to another "
                "sign-in and is not accepted."
            )
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        claims = dict(self.get_userinfo(access_token, id_token, payload))
        if claims.get("sub") != payload.get("sub"):
            raise SignInRefused("The provider's userinfo is about someone else than its ID token.")
        # The ID token's claims win: they are signed; userinfo fills in what they leave out.
        claims.update(payload)
        return sign_in_apply(issuer=settings.OIDC_ISSUER, claims=claims)
