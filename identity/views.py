"""The sign-in round trip through the provider, and signing out there too.

`ProviderSignIn` sends the browser to the provider (state, nonce and PKCE kept in the session;
the page the person came from kept too), `ProviderCallback` takes it back. Every refusal (a
forged or expired ID token, a wrong state, nonce or audience, a provider that is down) shows the
sign-in page with the reason, status 400 or 502, and signs nobody in.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.views.decorators.http import require_POST
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from . import provider
from .backends import discovered_setting
from .membership import SignInRefused
from .tokens import TokenRefused

logger = logging.getLogger(__name__)


def sign_in_refused(request: HttpRequest, reason: str, status: int = 400) -> HttpResponse:
    logger.warning("single sign-on refused: %s", reason)
    context = {"form": AuthenticationForm(request), "sso_error": reason, "next": ""}
    return render(request, "registration/login.html", context, status=status)


class ProviderSignIn(OIDCAuthenticationRequestView):
    def __init__(self, *args, **kwargs):
        # The library reads the authorization endpoint here; ours comes from discovery in get().
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get_settings(self, attr, *args):
        return discovered_setting(attr, *args)

    def get(self, request):
        if not settings.OIDC_ISSUER:
            return sign_in_refused(request, "No identity provider is configured.", 404)
        try:
            self.OIDC_OP_AUTH_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except provider.ProviderError as error:
            return sign_in_refused(request, f"The identity provider is unavailable: {error}.", 502)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class ProviderCallback(OIDCAuthenticationCallbackView):
    def get_settings(self, attr, *args):
        return discovered_setting(attr, *args)

    def get(self, request):
        if request.GET.get("error"):
            detail = request.GET.get("error_description") or request.GET["error"]
            super().get(request)  # forgets the state, signs out
            return sign_in_refused(request, f"The identity provider refused: {detail}")
        if "oidc_states" not in request.session and "code" in request.GET:
            return sign_in_refused(
                request,
                "This sign-in was not started in this browser (no state in the session): "
                "start again from the sign-in page.",
            )
        try:
            return super().get(request)
        except SuspiciousOperation:
            return sign_in_refused(
                request,
                "The sign-in's state does not match the one this browser sent: the link is "
                "stale or forged. Start again from the sign-in page.",
            )
        except (TokenRefused, SignInRefused) as error:
            return sign_in_refused(request, f"Sign-in refused. {error}")
        except (provider.ProviderError, requests.RequestException) as error:
            return sign_in_refused(request, f"The identity provider failed: {error}", 502)

    def login_failure(self):
        return sign_in_refused(self.request, "The identity provider did not sign you in.")


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Signs out of Quorum and, after a provider sign-in, of the provider too (RP-initiated
    logout) when it publishes an end_session_endpoint."""
    id_token = request.session.get("oidc_id_token")
    auth.logout(request)
    after = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
    if id_token and settings.OIDC_ISSUER:
        try:
            end_session = provider.discovery(settings.OIDC_ISSUER).get("end_session_endpoint")
        except provider.ProviderError:
            end_session = None  # signed out here; the provider's session ends on its own
        if end_session:
            query = urlencode(
                {
                    "id_token_hint": id_token,
                    "client_id": settings.OIDC_RP_CLIENT_ID,
                    "post_logout_redirect_uri": after,
                }
            )
            return HttpResponseRedirect(f"{end_session}?{query}")
    return HttpResponseRedirect(after)
