"""/healthz, /readyz and /metrics, answered before any other middleware runs.

Probes and scrapers reach each process by its own address (a kubelet, a load balancer's health
check, Prometheus' service discovery): the Host they send is no name in ALLOWED_HOSTS, they speak
plain HTTP where QUORUM_HTTPS redirects, and they carry no session, CSRF token or sign-in. So
these three paths are served here, first in MIDDLEWARE, and none of what follows (host
validation, the HTTPS redirect, sessions, CSRF, the sign-in throttle, the X-Forwarded-For note)
sees them. /metrics has its own access rule (operations.access).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from . import health
from .access import metrics_refusal
from .metrics import exposition


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "alive"})


def readyz(request: HttpRequest) -> HttpResponse:
    asked = [n.strip() for n in request.GET.get("check", "").split(",") if n.strip()]
    unknown = [name for name in asked if name not in health.CHECKS]
    if unknown:
        return JsonResponse(
            {
                "error": f"unknown check {', '.join(unknown)}: the checks are "
                f"{', '.join(health.CHECKS)}"
            },
            status=400,
        )
    found = health.readiness(asked or list(health.CHECKS))
    return JsonResponse(found.as_json(), status=200 if found.ready else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    # The classic text format (0.0.4), which every Prometheus since 2.0 reads; Quorum's names
    # need nothing newer.
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


ENDPOINTS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
}


class OperationsEndpointsMiddleware:
    """Answers ENDPOINTS' paths (with or without a trailing slash) to GET and HEAD; everything
    else goes on to the rest of the stack."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = ENDPOINTS.get(request.path_info.rstrip("/") or "/")
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse("Use GET.\n", status=405, content_type="text/plain")
            response["Allow"] = "GET, HEAD"
            return _no_store(response)
        return _no_store(view(request))
