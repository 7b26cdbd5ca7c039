"""Outgoing webhooks: JSON for every decision, execution result, comment and dismissed approval,
POSTed to each configured URL.

Chat and CD systems subscribe by being listed in `QUORUM_WEBHOOK_URLS`. Every request carries

- `X-Quorum-Event`: the audit action (`request.approved`, `transition.done`, ...);
- `X-Quorum-Delivery`: one id per (event, URL), the same on every attempt, to drop duplicates;
- `X-Quorum-Timestamp`: Unix seconds when this attempt was signed (refuse old ones: replays);
- `X-Quorum-Signature`: `sha256=<hex>`, the HMAC-SHA256 under `QUORUM_WEBHOOK_SECRET` of
  `<timestamp>.<raw body>`.

Deliveries go through the same outbox as mail (`reviews.notify`): a `WebhookDelivery` row per URL
is written in the event's transaction, a job on the `notifications` queue posts them after commit
and is retried by RQ with backoff while a receiver fails, and the periodic sweep posts whatever is
still pending, so nothing is lost while Redis or a receiver is down. A non-2xx answer, a timeout
or a refused connection is a failure; a redirect is one too: Quorum posts to the listed URLs only,
and checks the list again when it sends.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from registry import metrics

from ..links import request_url
from ..models import AuditEvent, OutboxState, WebhookDelivery
from . import outbox

logger = logging.getLogger(__name__)

ACTIONS = {
    "request.approved",
    "request.rejected",
    "request.expired",
    "request.cancelled",
    "transition.done",
    "transition.failed",
    "break_glass.used",
    "break_glass.unratified",
    "comment.posted",
    # Approvals dismissed because the evidence changed: their voters are asked to review again.
    "votes.stale",
}
USER_AGENT = "Quorum-Webhooks/1"


class WebhookError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def on_event_recorded(sender, event: AuditEvent, **kwargs) -> None:
    """Writes a delivery per configured URL for decisions and execution results."""
    if outbox_deliveries(event):
        transaction.on_commit(lambda: enqueue(event))


def outbox_deliveries(event: AuditEvent) -> int:
    urls = settings.QUORUM_WEBHOOK_URLS
    if event.action not in ACTIONS or not urls:
        return 0
    WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(event=event, url=url) for url in urls], ignore_conflicts=True
    )
    return len(urls)


def enqueue(event: AuditEvent) -> bool:
    return outbox.enqueue(
        deliver_event, event.pk, job_id=outbox.job_id("webhooks", event), what="webhooks"
    )


def deliver_event(event_id: int) -> str:
    """RQ job: posts the event to every URL still waiting for it; raises if one failed."""
    return outbox.send_for_event(WebhookDelivery, event_id, deliver)


def deliver(ids: list[int]) -> tuple[int, int, int]:
    delivered = skipped = failed = 0
    configured = set(settings.QUORUM_WEBHOOK_URLS)
    bodies: dict[int, bytes] = {}
    for item in WebhookDelivery.objects.filter(pk__in=ids).select_related(
        "event__request__version__model", "event__request__requester"
    ):
        if not outbox.claim(WebhookDelivery, item.pk):
            continue
        if item.url not in configured:
            outbox.finish(item, OutboxState.SKIPPED, "the URL is no longer in QUORUM_WEBHOOK_URLS")
            skipped += 1
            continue
        try:
            if item.event_id not in bodies:
                bodies[item.event_id] = body(item.event)
            status = post(item.url, bodies[item.event_id], event=item.event, delivery=item.pk)
        except WebhookError as error:
            outbox.release_failed(item, str(error), response_status=error.status)
            failed += 1
        else:
            outbox.finish(item, OutboxState.SENT, response_status=status)
            delivered += 1
    return delivered, skipped, failed


def sweep(*, now=None) -> int:
    """Posts pending deliveries nobody is posting (lost enqueue, retries used up, dead worker)."""
    ids = list(
        outbox.due(WebhookDelivery, now=now)
        .order_by("pk")
        .values_list("pk", flat=True)[: outbox.SWEEP_BATCH]
    )
    if not ids:
        return 0
    delivered, skipped, failed = deliver(ids)
    logger.info("webhook sweep: %s delivered, %s skipped, %s failed", delivered, skipped, failed)
    return delivered


# -- what is sent -------------------------------------------------------------------------------


def payload(event: AuditEvent) -> dict:
    """The event as receivers see it: what happened, to which request, and its details."""
    request = event.request if event.request_id else None
    data: dict = {
        "event": event.action,
        "event_id": event.sequence,
        "occurred_at": event.created_at.isoformat(),
        "actor": event.actor,
        "model": event.model_name,
        "version": event.version,
        "details": event.details,
        "request": None,
    }
    if event.action.startswith("request."):
        data["decision"] = event.action.removeprefix("request.")
    elif event.action.startswith("transition."):
        data["execution"] = event.action.removeprefix("transition.")
    if request is not None:
        data["request"] = {
            "id": request.pk,
            "url": request_url(request.pk),
            "target": request.target,
            "requester": request.requester.get_username(),
            "created_at": request.created_at.isoformat(),
            # break_glass moves and their ratifications are marked as such for receivers.
            "kind": request.kind,
        }
    return data


def body(event: AuditEvent) -> bytes:
    # Strict JSON: a metric value that is NaN or infinite goes in the mirror's spelling ("NaN").
    data = metrics.encode_json(payload(event))
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def signature(secret: str, timestamp: str, raw: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would send the signed body to a URL nobody configured: fail instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise WebhookError(f"HTTP {code}: redirects to {newurl}; not followed", status=code)


def post(url: str, raw: bytes, *, event: AuditEvent, delivery: int) -> int:
    """POSTs one signed body; returns the 2xx status or raises WebhookError."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise WebhookError(f"{url} is not an http(s) URL")
    timestamp = str(int(time.time()))
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        url,
        data=raw,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Quorum-Event": event.action,
            "X-Quorum-Delivery": str(delivery),
            "X-Quorum-Timestamp": timestamp,
            "X-Quorum-Signature": signature(settings.QUORUM_WEBHOOK_SECRET, timestamp, raw),
        },
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=settings.QUORUM_WEBHOOK_TIMEOUT) as response:
            return response.status
    except urllib.error.HTTPError as error:
        raise WebhookError(f"HTTP {error.code} from {url}", status=error.code) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise WebhookError(f"{url}: {getattr(error, 'reason', error)}") from None
