"""What the sign-in page offers (the provider's button, whether passwords are taken) and says
(what the person is signing in to, read from the page they were sent from)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.urls import Resolver404, resolve


def sign_in_options(request) -> dict:
    options = {
        "sso_provider_name": settings.OIDC_PROVIDER_NAME if settings.OIDC_ISSUER else "",
        "password_login": settings.QUORUM_PASSWORD_LOGIN,
    }
    if request.path == settings.LOGIN_URL:
        options["sign_in_destination"] = destination(
            request.POST.get("next") or request.GET.get("next", "")
        )
    return options


def destination(next_url: str) -> str:
    """What the person will do at `next_url`, in words ("review request #12", "open fraud v5"),
    or "" for a page with nothing to add.

    Only what the address itself says: a person who is not signed in learns nothing from it that
    the link did not already show (a request's model and target stay behind the sign-in)."""
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return ""  # Django will not follow it anyway: another site's address
    try:
        match = resolve(parts.path)
    except Resolver404:
        return ""
    arguments = match.kwargs
    words = {
        "reviews:request_detail": lambda: f"review request #{arguments['pk']}",
        "reviews:inbox": lambda: "open your review inbox",
        "registry:version_detail": lambda: f"open {arguments['name']} v{arguments['version']}",
        "registry:model_detail": lambda: f"open model {arguments['name']}",
        "registry:compare": lambda: f"compare versions of {arguments['name']}",
        "reviews:break_glass_report": lambda: "open the break-glass report",
        "reviews:audit": lambda: "open the audit log",
        "reviews:analytics": lambda: "open the review analytics",
    }.get(match.view_name)
    return words() if words else ""
