"""The MLflow webhook receiver and `register_mlflow_webhook`, against real Redis and MLflow.

Every refused delivery is checked for its status and for having queued nothing; the end-to-end
test has the real MLflow server deliver to the real receiver and a worker mirror the change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from quorum.localservices import free_port
from registry.jobs import pending_marker, sync_model
from registry.models import ModelVersion, SyncRun
from registry.webhooks import MAX_BODY_BYTES
from tests.mlflow_registry import register_in_mlflow
from tests.waiting import wait_for

SECRET = "webhook-secret-for-tests"
URL = "/webhooks/mlflow"


def payload(name: str, *, entity: str = "model_version", action: str = "created") -> bytes:
    """What MLflow sends (see mlflow/webhooks/delivery.py)."""
    return json.dumps(
        {
            "entity": entity,
            "action": action,
            "timestamp": "2026-11-23T12:00:00+00:00",
            "data": {"name": name, "version": "1", "source": "runs:/abc/model", "run_id": "abc"},
        }
    ).encode()


def signed_headers(
    body: bytes,
    *,
    secret: str = SECRET,
    delivery_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(
        secret.encode(), f"{delivery_id}.{stamp}.".encode() + body, hashlib.sha256
    ).digest()
    return {
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
    }


def deliver(body: bytes, headers: dict[str, str]):
    # CSRF checks on, as in production: the receiver must work without a token.
    return Client(enforce_csrf_checks=True).post(
        URL, data=body, content_type="application/json", headers=headers
    )


@pytest.fixture
def sync_queue(rq_queue, settings):
    settings.MLFLOW_WEBHOOK_SECRET = SECRET
    return rq_queue("sync")


def assert_nothing_queued(queue, name: str) -> None:
    assert queue.count == 0
    assert queue.connection.get(pending_marker(name)) is None


def assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code and body["detail"]


# -- accepted deliveries ------------------------------------------------------------------------


def test_signed_delivery_queues_a_sync_of_its_model(sync_queue, unique_name):
    body = payload(unique_name)

    response = deliver(body, signed_headers(body))

    assert response.status_code == 202
    assert response.json()["status"] == "queued" and response.json()["model"] == unique_name
    (job,) = sync_queue.get_jobs()
    assert job.func is sync_model and job.args == (unique_name,)


def test_deliveries_while_a_sync_waits_join_it(sync_queue, unique_name):
    for action in ("created", "set", "deleted"):
        body = payload(unique_name, entity="model_version_tag", action=action)
        response = deliver(body, signed_headers(body))
        assert response.status_code == 202

    assert response.json()["status"] == "already_queued"
    assert sync_queue.count == 1


def test_events_of_entities_the_mirror_has_no_use_for_are_ignored(sync_queue, unique_name):
    body = payload(unique_name, entity="prompt")

    response = deliver(body, signed_headers(body))

    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert_nothing_queued(sync_queue, unique_name)


# -- refused deliveries: a clear error and nothing queued ---------------------------------------


def test_signature_made_with_another_secret_is_refused(sync_queue, unique_name):
    body = payload(unique_name)

    response = deliver(body, signed_headers(body, secret="not-the-secret"))

    assert_refused(response, 401, "invalid_signature")
    assert_nothing_queued(sync_queue, unique_name)


def test_body_altered_after_signing_is_refused(sync_queue, unique_name):
    headers = signed_headers(payload(unique_name))

    response = deliver(payload(f"{unique_name}-other"), headers)

    assert_refused(response, 401, "invalid_signature")
    assert_nothing_queued(sync_queue, f"{unique_name}-other")


def test_unsigned_delivery_is_refused(sync_queue, unique_name):
    body = payload(unique_name)
    headers = signed_headers(body)
    del headers["X-MLflow-Signature"]

    response = deliver(body, headers)

    assert_refused(response, 401, "missing_signature")
    assert_nothing_queued(sync_queue, unique_name)


def test_delivery_without_timestamp_is_refused(sync_queue, unique_name):
    body = payload(unique_name)
    headers = signed_headers(body)
    del headers["X-MLflow-Timestamp"]

    response = deliver(body, headers)

    assert_refused(response, 400, "invalid_timestamp")
    assert_nothing_queued(sync_queue, unique_name)


@pytest.mark.parametrize(
    "direction, code", [(-1, "stale_delivery"), (+1, "timestamp_in_future")], ids=["old", "ahead"]
)
def test_delivery_dated_outside_the_accepted_window_is_refused(
    sync_queue, settings, unique_name, direction, code
):
    body = payload(unique_name)
    stamp = int(time.time()) + direction * (settings.MLFLOW_WEBHOOK_MAX_AGE_SECONDS + 5)

    response = deliver(body, signed_headers(body, timestamp=stamp))

    assert_refused(response, 401, code)
    assert_nothing_queued(sync_queue, unique_name)


def test_replayed_delivery_is_refused_even_after_its_sync_ran(sync_queue, rq_queue, unique_name):
    body = payload(unique_name)
    headers = signed_headers(body)
    assert deliver(body, headers).status_code == 202
    # As if the job had run: the queue is empty and the model's marker released.
    rq_queue("sync")
    sync_queue.connection.delete(pending_marker(unique_name))

    response = deliver(body, headers)

    assert_refused(response, 409, "replayed_delivery")
    assert_nothing_queued(sync_queue, unique_name)


def test_oversize_body_is_refused(sync_queue, unique_name):
    body = json.dumps(
        {"entity": "model_version", "data": {"name": unique_name, "pad": "x" * MAX_BODY_BYTES}}
    ).encode()

    response = deliver(body, signed_headers(body))

    assert_refused(response, 413, "payload_too_large")
    assert_nothing_queued(sync_queue, unique_name)


def test_signed_malformed_json_is_refused(sync_queue, unique_name):
    body = b'{"entity": "model_version", "data": {"name": '

    response = deliver(body, signed_headers(body))

    assert_refused(response, 400, "malformed_json")
    assert sync_queue.count == 0


@pytest.mark.parametrize(
    "document", [{"entity": "model_version", "data": {"version": "1"}}, [1, 2], {"data": "x"}]
)
def test_signed_payload_naming_no_model_is_refused(sync_queue, document):
    body = json.dumps(document).encode()

    response = deliver(body, signed_headers(body))

    assert_refused(response, 400, "missing_model_name")
    assert sync_queue.count == 0


def test_get_is_not_allowed(sync_queue):
    response = Client().get(URL)

    assert_refused(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    assert sync_queue.count == 0


def test_without_a_configured_secret_nothing_is_accepted(sync_queue, settings, unique_name):
    settings.MLFLOW_WEBHOOK_SECRET = ""
    body = payload(unique_name)

    # Signed with the (empty) configured secret, and not signed at all.
    for headers in (signed_headers(body, secret=""), {}):
        response = deliver(body, headers)
        assert_refused(response, 403, "receiver_not_configured")
        assert "MLFLOW_WEBHOOK_SECRET" in response.json()["detail"]
    assert_nothing_queued(sync_queue, unique_name)


def test_redis_down_answers_503_and_the_retry_is_accepted_once_it_is_back(
    sync_queue, settings, unique_name
):
    body = payload(unique_name)
    headers = signed_headers(body)
    reachable = settings.RQ_QUEUES
    nothing_listens = f"redis://127.0.0.1:{free_port()}/15"
    settings.RQ_QUEUES = {name: {**c, "URL": nothing_listens} for name, c in reachable.items()}

    response = deliver(body, headers)

    assert_refused(response, 503, "queue_unavailable")
    assert "periodic sync" in response.json()["detail"]
    settings.RQ_QUEUES = reachable
    assert_nothing_queued(sync_queue, unique_name)
    # MLflow retries a 503 with the same delivery id; that is not a replay.
    assert deliver(body, headers).status_code == 202
    assert sync_queue.count == 1


# -- registering the webhook in MLflow ----------------------------------------------------------


def named(client, name: str) -> list[tuple[str, str, str]]:
    return [webhook for webhook in client.list_webhooks() if webhook[1] == name]


def test_listing_webhooks_reads_every_page(mlflow_client, webhook_name):
    created = {
        mlflow_client.create_webhook(
            name=webhook_name,
            url=f"http://127.0.0.1:8000/webhooks/mlflow?copy={copy}",
            events=["model_version.created"],
            secret=SECRET,
        )
        for copy in range(3)
    }

    listed = mlflow_client.list_webhooks(page_size=2)

    assert created <= {webhook_id for webhook_id, _, _ in listed}
    assert len(listed) == len({webhook_id for webhook_id, _, _ in listed})


def test_register_command_refuses_without_a_secret(settings, mlflow_client, webhook_name):
    settings.MLFLOW_WEBHOOK_SECRET = ""

    with pytest.raises(CommandError, match="MLFLOW_WEBHOOK_SECRET is not set"):
        call_command("register_mlflow_webhook", "http://127.0.0.1:8000/webhooks/mlflow")

    assert named(mlflow_client, webhook_name) == []


def test_register_command_refuses_a_url_that_is_not_http(settings, mlflow_client, webhook_name):
    settings.MLFLOW_WEBHOOK_SECRET = SECRET

    with pytest.raises(CommandError, match="not an http"):
        call_command("register_mlflow_webhook", "ftp://example.com/x", "--name", webhook_name)

    assert named(mlflow_client, webhook_name) == []


def test_register_command_is_idempotent(settings, capsys, mlflow_client, webhook_name):
    settings.MLFLOW_WEBHOOK_SECRET = SECRET
    url = "http://127.0.0.1:8000/webhooks/mlflow"

    call_command("register_mlflow_webhook", url, "--name", webhook_name)
    call_command("register_mlflow_webhook", url, "--name", webhook_name)

    first, second = capsys.readouterr().out.strip().splitlines()
    assert first.startswith(f"Created webhook {webhook_name!r}")
    assert "already has webhook" in second and "nothing changed" in second
    assert [url] == [webhook_url for _, _, webhook_url in named(mlflow_client, webhook_name)]


# -- end to end: MLflow delivers, the receiver queues, a worker mirrors -------------------------


@pytest.mark.django_db(transaction=True)
def test_mlflow_delivers_changes_and_the_mirror_follows(
    live_server, sync_queue, simple_worker, mlflow_client, webhook_name, unique_name
):
    call_command(
        "register_mlflow_webhook", live_server.url + URL, "--name", webhook_name, verbosity=0
    )
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()

    register_in_mlflow(mlflow_client, unique_name, versions=1)
    mlflow_client.set_alias(unique_name, "champion", 1)

    # Nothing but a delivery queues a sync here (no periodic sync runs in tests). Deliveries
    # arrive asynchronously, so work off whatever they queued until the mirror has caught up.
    def mirrored_with_its_alias() -> ModelVersion | None:
        simple_worker(sync_queue)
        version = ModelVersion.objects.filter(model__name=unique_name, version=1).first()
        return version if version and version.aliases == ["champion"] else None

    version = wait_for(
        mirrored_with_its_alias,
        timeout=30,
        interval=0.2,
        message="MLflow's deliveries to bring v1 and its alias to the mirror",
    )
    assert version.model.aliases == {"champion": 1}
    assert SyncRun.objects.filter(kind="model", model_name=unique_name, error="").exists()
    assert not SyncRun.objects.exclude(kind="model").exists()
