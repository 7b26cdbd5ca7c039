"""Failed sign-ins, throttled by django-axes: who is counted, from which address, what they see.

Failures count per username and client address together (AXES_LOCKOUT_PARAMETERS); reaching
`QUORUM_LOGIN_FAILURE_LIMIT` locks that username's sign-ins from that address for
`QUORUM_LOGIN_LOCKOUT_MINUTES` (every further try while locked starts the wait again). Another
person's right password, from the same address too, is never refused because of them: an
address shared by a whole office (a proxy, a NAT) is not locked as a whole. This covers
/accounts/login/ and /admin/login/, and bearer tokens on the REST API (reviews/api/auth.py), which
name no user and so count under an empty username at their address; only unknown tokens are
counted and refused, never a valid one. An admin unlocks at once by deleting the entry under
*Access attempts* in the admin, or with `manage.py axes_reset_username NAME` / `axes_reset_ip
ADDRESS`.
"""

from __future__ import annotations

import ipaddress

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from reviews.api.errors import API_PREFIX, throttled_response


def client_address(request: HttpRequest) -> str | None:
    """The address a request came from: the connection's, or behind `QUORUM_PROXY_COUNT`
    reverse proxies, the one the outermost of them received it from.

    Each proxy appends the address it received the request from to X-Forwarded-For, so the
    entry that many places from the right is the last one a trusted proxy wrote; anything left
    of it came from the client and may be forged.
    """
    count = settings.QUORUM_PROXY_COUNT
    if count:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            candidate = hops[-min(count, len(hops))]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass  # not an address: the connection's is all we know
    return request.META.get("REMOTE_ADDR")


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed sign-ins for this account from your address. Try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}, or ask an administrator to unlock it."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """What a locked-out client is told, with status 429: the API's JSON error for a token, the
    sign-in page with the reason for a person (on /admin/login/ too)."""
    if request.path_info.startswith(API_PREFIX):
        return throttled_response()
    context = {
        "form": AuthenticationForm(request),
        "locked_out": lockout_message(),
        "next": request.POST.get("next", request.GET.get("next", "")),
    }
    return render(request, "registration/login.html", context, status=429)


class SignInThrottle(AxesStandaloneBackend):
    """django-axes' check, before any password is: a user locked out from this address is
    refused.

    `authenticate()` called without a request (a script, the shell, the test client's `login`)
    comes from no address, so it is not counted here; every sign-in page passes its request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
