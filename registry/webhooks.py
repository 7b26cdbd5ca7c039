"""The MLflow webhook receiver: `POST /webhooks/mlflow`.

MLflow 3 signs each delivery (`X-MLflow-Signature: v1,<base64 HMAC-SHA256>` over
`<delivery id>.<timestamp>.<body>` with the webhook's secret). A delivery is accepted only when
the signature matches `MLFLOW_WEBHOOK_SECRET`, its timestamp is recent and its delivery id is new;
then a sync of the one model it names is queued, and nothing else happens. Every refusal is a JSON
`{"error": code, "detail": message}` and changes nothing.

The receiver never reads MLflow itself: the job does, so a flood of deliveries costs Redis round
trips, not MLflow calls, and what the mirror shows comes from MLflow, not from a payload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis import RedisError

from .jobs import enqueue_model_sync, sync_connection

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # MLflow's payloads are well under 1 KiB
SIGNATURE_HEADER = "X-MLflow-Signature"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
MAX_DELIVERY_ID_LENGTH = 200
SEEN_PREFIX = "quorum:webhook:delivery:"
# The registry's entities. Prompts are registered models in MLflow too, but are not mirrored.
MODEL_ENTITIES = {"registered_model", "model_version", "model_version_tag", "model_version_alias"}


class Refused(Exception):
    """A delivery the receiver will not act on; becomes a JSON 4xx/5xx answer."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.code, "detail": self.detail}, status=self.status)
        if self.status == 405:
            response["Allow"] = "POST"
        return response


@csrf_exempt  # authenticated by its signature; MLflow has no CSRF token to send
def mlflow_webhook(request):
    try:
        if request.method != "POST":
            raise Refused(405, "method_not_allowed", "Deliveries are POSTed.")
        delivery_id, body = _verified_delivery(request)
        entity, name = _model_named(body)
        if entity not in MODEL_ENTITIES:
            return JsonResponse(
                {"status": "ignored", "detail": f"Entity {entity!r} is not mirrored."}, status=200
            )
        queued = _queue_sync_once(delivery_id, name)
    except Refused as refusal:
        logger.warning("webhook refused (%s): %s", refusal.code, refusal.detail)
        return refusal.response()
    return JsonResponse(
        {
            "status": "queued" if queued else "already_queued",
            "model": name,
            "detail": "A sync of this model was queued."
            if queued
            else "A sync of this model is already waiting to run; it will see this change.",
        },
        status=202,
    )


def _verified_delivery(request) -> tuple[str, bytes]:
    """The delivery id and raw body of a correctly signed, recent delivery."""
    secret = settings.MLFLOW_WEBHOOK_SECRET
    if not secret:
        # Without a secret a delivery cannot be told from a forgery, so none is accepted.
        raise Refused(
            403,
            "receiver_not_configured",
            "MLFLOW_WEBHOOK_SECRET is not set on this Quorum server, so no delivery can be "
            "verified; set it to the secret the MLflow webhook was created with.",
        )
    too_large = Refused(
        413, "payload_too_large", f"The body may hold at most {MAX_BODY_BYTES} bytes."
    )
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise too_large

    signature = request.headers.get(SIGNATURE_HEADER, "")
    delivery_id = request.headers.get(DELIVERY_ID_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not signature:
        raise Refused(401, "missing_signature", f"The {SIGNATURE_HEADER} header is missing.")
    if not delivery_id or len(delivery_id) > MAX_DELIVERY_ID_LENGTH:
        raise Refused(
            400,
            "invalid_delivery_id",
            f"{DELIVERY_ID_HEADER} must hold 1 to {MAX_DELIVERY_ID_LENGTH} characters.",
        )
    if not timestamp.isdigit():
        raise Refused(
            400, "invalid_timestamp", f"{TIMESTAMP_HEADER} must be a unix time in seconds."
        )
    if not signature_valid(
        secret, signature=signature, delivery_id=delivery_id, timestamp=timestamp, body=body
    ):
        raise Refused(
            401,
            "invalid_signature",
            "The signature does not match: the webhook's secret in MLflow differs from "
            "MLFLOW_WEBHOOK_SECRET, or the delivery was altered.",
        )
    # A tolerance both ways, as Standard Webhooks has it: clocks drift in either direction.
    max_age = settings.MLFLOW_WEBHOOK_MAX_AGE_SECONDS
    age = time.time() - int(timestamp)
    if age > max_age:
        raise Refused(
            401,
            "stale_delivery",
            f"The delivery is {age:.0f} s old; at most {max_age} s is accepted.",
        )
    if age < -max_age:
        raise Refused(
            401,
            "timestamp_in_future",
            f"The delivery is dated {-age:.0f} s ahead of this server's clock; "
            f"at most {max_age} s is accepted.",
        )
    return delivery_id, body


def signature_valid(
    secret: str, *, signature: str, delivery_id: str, timestamp: str, body: bytes
) -> bool:
    """Whether a `v1,<base64>` signature in the header (space-separated list) matches."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest())
    return any(
        version == "v1" and hmac.compare_digest(value.encode(), expected)
        for version, _, value in (part.partition(",") for part in signature.split())
    )


def _model_named(body: bytes) -> tuple[str, str]:
    """The payload's entity and the registered model it is about."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Refused(400, "malformed_json", f"The body is not valid JSON: {error}") from error
    data = payload.get("data") if isinstance(payload, dict) else None
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise Refused(400, "missing_model_name", "The payload names no model (data.name).")
    return str(payload.get("entity", "")), name


def _queue_sync_once(delivery_id: str, name: str) -> bool:
    """Queues the model's sync unless this delivery was seen; True when a new job was queued."""
    seen_key = SEEN_PREFIX + hashlib.sha256(delivery_id.encode()).hexdigest()
    # Remembered while the delivery's timestamp is acceptable (either side of now); after that
    # the age check refuses a replay on its own.
    remember_for = 2 * settings.MLFLOW_WEBHOOK_MAX_AGE_SECONDS + 1
    try:
        redis = sync_connection()
        if not redis.set(seen_key, "1", nx=True, ex=remember_for):
            raise Refused(409, "replayed_delivery", "This delivery id was received already.")
        try:
            return enqueue_model_sync(name)
        except RedisError:
            # MLflow retries a 503 with the same delivery id: let that retry through.
            redis.delete(seen_key)
            raise
    except RedisError as error:
        raise Refused(
            503,
            "queue_unavailable",
            f"The job queue (Redis) is unreachable, so no sync was queued ({error}); the "
            "periodic sync will pick the change up.",
        ) from error
