"""Pages that differ per user are not kept by the browser.

A signed-in user's pages (the inbox, a request, a version) change with every vote. Kept in the
browser's cache or its back/forward cache, Back after voting showed the inbox as it was before
the vote. Every answer to a signed-in user that did not choose its own caching is marked
`no-store` (Django's `add_never_cache_headers`), which also keeps it out of the back/forward
cache; endpoints that are polled choose their own (`private, no-cache` with an ETag, so the
browser revalidates instead of downloading again).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


class PrivatePagesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response
