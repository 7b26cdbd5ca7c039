"""Requests that arrive through a proxy Quorum was not told about.

Behind reverse proxies Quorum takes the client's address from X-Forwarded-For, QUORUM_PROXY_COUNT
entries from the right (quorum/lockout.py). Left at 0, every client seems to be the proxy. A
request carrying X-Forwarded-For says a proxy is there, so `ForwardedForMiddleware` notes it in
the database, which every web process on every host shares: a process logs a warning at the
first such request it sees and refreshes the note at most once an hour. `manage.py check
--deploy`, which the release step runs in a process of its own, reports a note younger than
SIGHTING_MAX_AGE as quorum.W004.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import ForwardedForSighting

logger = logging.getLogger(__name__)

SIGHTING_PK = 1
# A note older than this is a proxy that has gone (or the count was set since): not reported.
SIGHTING_MAX_AGE = timedelta(days=7)
REFRESH_SECONDS = 3600
# What a missing proxy count does, and what to set: shared by the log line and the checks.
CONSEQUENCE = (
    "every client seems to come from the proxy's address, so the sign-in lockout cannot tell "
    "an attacker from the user they guess for, and the access logs name the proxy"
)
HINT = (
    "Set QUORUM_PROXY_COUNT to the number of reverse proxies that append to X-Forwarded-For "
    "(1 for a single nginx or load balancer)."
)


def sighting_record(*, forwarded_for: str, remote_addr: str) -> None:
    """Notes a request that came with X-Forwarded-For while QUORUM_PROXY_COUNT is 0."""
    now = timezone.now()
    values = {
        "last_seen_at": now,
        "forwarded_for": forwarded_for[:255],
        "remote_addr": remote_addr[:64],
    }
    with transaction.atomic():
        if ForwardedForSighting.objects.filter(pk=SIGHTING_PK).update(**values):
            return
        ForwardedForSighting.objects.create(pk=SIGHTING_PK, first_seen_at=now, **values)


def recent_sighting() -> ForwardedForSighting | None:
    """The note, if a request came with X-Forwarded-For within SIGHTING_MAX_AGE."""
    since = timezone.now() - SIGHTING_MAX_AGE
    return ForwardedForSighting.objects.filter(pk=SIGHTING_PK, last_seen_at__gte=since).first()


class ForwardedForMiddleware:
    """Notes requests with X-Forwarded-For while QUORUM_PROXY_COUNT is 0: once an hour per
    process at most, with a warning in the log the first time."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.noted_at: float | None = None  # time.monotonic() of this process's last note

    def __call__(self, request: HttpRequest) -> HttpResponse:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded and not settings.QUORUM_PROXY_COUNT:
            self.note(forwarded, request.META.get("REMOTE_ADDR") or "")
        return self.get_response(request)

    def note(self, forwarded: str, remote_addr: str) -> None:
        now = time.monotonic()
        if self.noted_at is not None and now - self.noted_at < REFRESH_SECONDS:
            return
        if self.noted_at is None:
            logger.warning(
                "A request from %s came with X-Forwarded-For %r, so a proxy is in front of "
                "Quorum, but QUORUM_PROXY_COUNT is 0: %s. %s",
                remote_addr,
                forwarded,
                CONSEQUENCE,
                HINT,
            )
        self.noted_at = now
        try:
            sighting_record(forwarded_for=forwarded, remote_addr=remote_addr)
        except DatabaseError as error:
            # No table yet (before `migrate`), or two processes creating the note at once:
            # the next refresh tries again.
            logger.info("could not note the X-Forwarded-For request: %s", error)
