"""How the REST API refuses: every error is `{"error": code, "detail": message}` as JSON.

The API's own refusals (engine errors, bad tokens, invalid bodies) come through the exception
handlers `install` adds to the API; what Django or django-ninja answer before or around the API's
handlers (an unknown route, a method a route lacks, an oversized body, a server error) goes
through `ApiEdgeMiddleware`, so a client never has to parse an HTML page.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from ..errors import QuorumError
from .auth import Throttled, Unauthorized

HTTP_CODES = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "throttled",
    500: "server_error",
}
# Where the API lives (quorum/urls.py), and the largest body it reads: a request or a vote with
# the longest comment, every character escaped, is well under it.
API_PREFIX = "/api/"
MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = f"The body is larger than the {MAX_BODY_BYTES:,} bytes (64 KiB) the API accepts."
# Endpoints that read whole files take more: `POST /policies/test` carries a policy file and a
# cases file (1 MiB each at most) as JSON strings. Django's own default limit, 2.5 MiB.
LARGER_BODIES = {f"{API_PREFIX}v1/policies/test": 2_621_440}
TOO_LARGE_FOR_FILES = "The body is larger than the 2,621,440 bytes (2.5 MiB) this endpoint accepts."


def error_response(status: int, code: str, detail: str) -> HttpResponse:
    return JsonResponse(
        {"error": code, "detail": detail},
        status=status,
        content_type="application/json; charset=utf-8",
    )


def throttled_response() -> HttpResponse:
    """429 for an address locked out after failed tokens (quorum/lockout.py), with Retry-After."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    minutes = seconds // 60
    response = error_response(
        429,
        HTTP_CODES[429],
        "Too many failed tokens from this address. Try again in "
        f"{minutes} minute{'s' if minutes != 1 else ''}, or ask an administrator to unlock it.",
    )
    response["Retry-After"] = str(seconds)
    return response


def install(api: NinjaAPI) -> None:
    """Adds the handlers that turn every exception the API expects into its error shape."""

    @api.exception_handler(QuorumError)
    def _quorum_error(request: HttpRequest, exc: QuorumError) -> HttpResponse:
        return error_response(exc.status, exc.code, str(exc))

    @api.exception_handler(Unauthorized)
    def _unauthorized(request: HttpRequest, exc: Unauthorized) -> HttpResponse:
        response = error_response(exc.status, exc.code, str(exc))
        response["WWW-Authenticate"] = 'Bearer realm="quorum"'
        return response

    @api.exception_handler(Throttled)
    def _throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        return throttled_response()

    @api.exception_handler(NinjaValidationError)
    def _invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        # ninja answers 422 with pydantic's list; the API promises 400 and one readable sentence.
        problems = []
        for item in exc.errors:
            place = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            message = item.get("msg", "invalid").removeprefix("Value error, ")
            if item.get("type") == "extra_forbidden":
                message = "unknown field"
            problems.append(f"{place or 'body'}: {message}")
        return error_response(400, "invalid_request", "; ".join(problems) or "Invalid request.")

    @api.exception_handler(HttpError)
    def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), str(exc))

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(404, "not_found", "Not found.")

    @api.exception_handler(RequestDataTooBig)
    def _too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        # Django's own limit, should DATA_UPLOAD_MAX_MEMORY_SIZE be set below the API's.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(
            413, HTTP_CODES[413], f"The body is larger than the {limit:,} bytes accepted."
        )


def _edge_detail(request: HttpRequest, response: HttpResponse) -> str:
    if response.status_code == 404:
        return (
            f"There is no API endpoint at {request.path}; the endpoints are listed at "
            f"{API_PREFIX}v1/docs."
        )
    if response.status_code == 405:
        return f"{request.method} is not allowed here; use {response.get('Allow', 'another')}."
    if response.status_code >= 500:
        return "The server failed to answer; the error was logged."
    return f"The request was refused ({response.status_code} {response.reason_phrase})."


class ApiEdgeMiddleware:
    """What reaches the API's URLs outside its handlers still gets the API's answer: a body over
    `MAX_BODY_BYTES` is refused unread (413), and an unknown route (404), a method the route
    lacks (405) or a server error that Django or django-ninja answer with HTML are answered as
    `{"error", "detail"}` with the same status and headers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads no body then either
        limit = LARGER_BODIES.get(request.path_info, MAX_BODY_BYTES)
        if length > limit:
            detail = TOO_LARGE if limit == MAX_BODY_BYTES else TOO_LARGE_FOR_FILES
            return error_response(413, HTTP_CODES[413], detail)
        response = self.get_response(request)
        if response.status_code < 400 or response.get("Content-Type", "").startswith(
            "application/json"
        ):
            return response
        status = response.status_code
        answer = error_response(
            status, HTTP_CODES.get(status, "error"), _edge_detail(request, response)
        )
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                answer[header] = response[header]
        return answer
