"""Who may read /metrics: a bearer token (QUORUM_METRICS_TOKEN), or a connection from an address
in QUORUM_METRICS_ALLOW (CIDRs). With neither set, /metrics is off and answers 404 saying how to
turn it on: the numbers name models, targets and policies, which are not for everyone.

The allow-list is matched against the connection's own address, never X-Forwarded-For: a scraper
talks to each web process directly, and a header is whatever a client writes. Through a proxy,
scrape with the token.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def _refusal(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type="text/plain")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="quorum-metrics"'
    return response


def metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """Why this request may not read /metrics, as the answer to send; None when it may."""
    token: str = settings.QUORUM_METRICS_TOKEN
    networks = settings.QUORUM_METRICS_ALLOW
    if not token and not networks:
        return _refusal(
            404,
            "Metrics are off: set QUORUM_METRICS_TOKEN (a bearer token for the scraper) or "
            "QUORUM_METRICS_ALLOW (the scraper's addresses, as CIDRs) to turn them on.",
        )
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, given = header.partition(" ")
        if not token:
            return _refusal(
                403,
                "Metrics take no token here (QUORUM_METRICS_TOKEN is not set); they are read "
                "from the addresses in QUORUM_METRICS_ALLOW.",
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return _refusal(401, "The bearer token is not the metrics token.")
        return None
    address = request.META.get("REMOTE_ADDR", "")
    try:
        allowed = any(ipaddress.ip_address(address) in network for network in networks)
    except ValueError:
        allowed = False
    if allowed:
        return None
    if token:
        return _refusal(
            401, "Send the metrics token: Authorization: Bearer <QUORUM_METRICS_TOKEN>."
        )
    return _refusal(403, f"The address {address} is not in QUORUM_METRICS_ALLOW.")
