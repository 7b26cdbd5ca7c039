"""Outgoing webhooks: real HTTP receivers on 127.0.0.1, a real RQ worker, the real review engine."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import django_rq
import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from quorum.localservices import free_port
from reviews import notify
from reviews.decisions import deciding, opening, voting
from reviews.execution import jobs
from reviews.models import OutboxState, WebhookDelivery
from reviews.notify import webhooks_out
from tests.factories import make_mirror

pytestmark = pytest.mark.django_db

SECRET = "webhook-test-secret"
BASE_URL = "https://quorum.example.com"


class Receiver:
    """An HTTP server that records every POST and answers with the next of `answers`
    ((status, headers) pairs), then 200."""

    def __init__(self, answers=(), port: int = 0):
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.answers = list(answers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers.items()), body))
                status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/quorum"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.posts]


@pytest.fixture
def receivers():
    """`receivers(answers=..., port=...)` starts a Receiver, stopped after the test."""
    started = []

    def start(answers=(), port: int = 0) -> Receiver:
        started.append(Receiver(answers, port))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture
def hooks(policies, settings, rq_queue):
    settings.QUORUM_BASE_URL = BASE_URL
    settings.QUORUM_WEBHOOK_SECRET = SECRET
    settings.QUORUM_NOTIFY_RETRY_INTERVALS = [0, 0]  # three tries, no waiting
    rq_queue(jobs.QUEUE)
    return rq_queue(notify.QUEUE)


def cancelled_request(requester, committed):
    """A request opened and then cancelled by its requester: one decision event."""
    make_mirror()
    with committed():
        request = opening.request_create(
            model="fraud-detector", version=2, target="Production", requester=requester
        )
        deciding.request_cancel(request_id=request.pk, user=requester)
    return request


def verify(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    """What a receiver does: recompute the HMAC of "<timestamp>.<body>" and compare."""
    expected = hmac.new(
        secret.encode(), headers["X-Quorum-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(headers["X-Quorum-Signature"], f"sha256={expected}")


def test_a_decision_is_posted_signed_to_every_configured_url(
    hooks, receivers, requester, committed, settings, simple_worker
):
    chat, deploy = receivers(), receivers()
    settings.QUORUM_WEBHOOK_URLS = [chat.url, deploy.url]

    request = cancelled_request(requester, committed)
    simple_worker(hooks)

    for receiver in (chat, deploy):
        [(headers, body)] = receiver.posts  # the decision only: an opened request is no result
        assert verify(headers, body)
        assert not verify(headers, body, secret="another secret")
        assert abs(int(headers["X-Quorum-Timestamp"]) - time.time()) < 60
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Quorum-Event"] == "request.cancelled"
        data = json.loads(body)
        assert data["event"] == "request.cancelled" and data["decision"] == "cancelled"
        assert (data["model"], data["version"], data["actor"]) == ("fraud-detector", 2, "requester")
        assert data["details"] == {"reason": "Cancelled by requester"}
        assert data["request"] == {
            "id": request.pk,
            "url": BASE_URL + reverse("reviews:request_detail", args=[request.pk]),
            "target": "Production",
            "requester": "requester",
            "created_at": request.created_at.isoformat(),
            "kind": "promotion",
        }
    assert chat.posts[0][0]["X-Quorum-Delivery"] != deploy.posts[0][0]["X-Quorum-Delivery"]
    assert set(WebhookDelivery.objects.values_list("state", "response_status")) == {("sent", 200)}


def test_a_rejection_for_a_nan_metric_is_posted_as_strict_json(
    hooks, receivers, requester, committed, settings, simple_worker
):
    receiver = receivers()
    settings.QUORUM_WEBHOOK_URLS = [receiver.url]
    make_mirror(versions={2: ("None", {"accuracy": "NaN", "f1": 0.9})})

    with committed():
        opening.request_create(
            model="fraud-detector", version=2, target="Production", requester=requester
        )
    simple_worker(hooks)

    [(headers, body)] = receiver.posts
    assert verify(headers, body)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    data = json.loads(body, parse_constant=refuse)
    assert data["event"] == "request.rejected"
    assert "accuracy is NaN" in data["details"]["reason"]


def test_a_failing_receiver_gets_retries_and_the_event_arrives_once(
    hooks, receivers, requester, committed, settings, simple_worker
):
    flaky = receivers(answers=[(500, {}), (503, {})])
    settings.QUORUM_WEBHOOK_URLS = [flaky.url]

    cancelled_request(requester, committed)
    simple_worker(hooks)  # the job fails twice; RQ retries it

    assert len(flaky.posts) == 3
    assert len({body for _, body in flaky.posts}) == 1
    assert len({headers["X-Quorum-Delivery"] for headers, _ in flaky.posts}) == 1
    assert all(verify(headers, body) for headers, body in flaky.posts)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("sent", 3, 200)

    hooks.enqueue(webhooks_out.deliver_event, delivery.event_id)  # run again: nothing to send
    simple_worker(hooks)
    assert len(flaky.posts) == 3


def test_a_receiver_down_longer_than_the_retries_gets_the_event_from_the_sweep(
    hooks, receivers, requester, committed, settings, simple_worker
):
    port = free_port()
    settings.QUORUM_WEBHOOK_URLS = [f"http://127.0.0.1:{port}/hooks/quorum"]

    cancelled_request(requester, committed)
    simple_worker(hooks)  # three tries, all refused

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == (OutboxState.PENDING, 3)
    assert "refused" in delivery.last_error.lower()

    back = receivers(port=port)
    hooks.enqueue(notify.periodic)  # the cron job, before the backoff is over: nothing yet
    simple_worker(hooks)
    assert back.posts == []
    hooks.enqueue(webhooks_out.sweep, kwargs={"now": timezone.now() + timedelta(hours=2)})
    simple_worker(hooks)

    assert back.events() == ["request.cancelled"]
    assert verify(*back.posts[0])
    assert WebhookDelivery.objects.get().state == OutboxState.SENT


def test_the_approval_and_the_transition_result_are_posted(
    promoted, hooks, receivers, cast, committed, settings, simple_worker, run_transition
):
    deploy = receivers()
    settings.QUORUM_WEBHOOK_URLS = [deploy.url]
    with committed():
        request = opening.request_create(
            model=promoted, version=3, target="Production", requester=cast["requester"]
        )
    for name in ("lead", "scientist1", "scientist2"):
        with committed():
            voting.vote_cast(request_id=request.pk, user=cast[name], decision="approve")

    run_transition(request)
    simple_worker(hooks)

    assert deploy.events() == ["request.approved", "transition.done"]
    done = json.loads(deploy.posts[1][1])
    assert done["execution"] == "done" and done["actor"] == "system"
    assert done["details"] == {"already_at_target": False, "archived_versions": [1]}
    assert all(verify(headers, body) for headers, body in deploy.posts)


def test_nothing_is_posted_to_a_url_that_is_not_configured(
    hooks, receivers, requester, committed, settings, simple_worker
):
    elsewhere = receivers()
    redirecting = receivers(answers=[(302, {"Location": elsewhere.url})] * 3)
    dropped = receivers()
    settings.QUORUM_WEBHOOK_URLS = [redirecting.url, dropped.url]
    cancelled_request(requester, committed)

    settings.QUORUM_WEBHOOK_URLS = [redirecting.url]  # dropped from the list before the send
    simple_worker(hooks)

    assert len(redirecting.posts) == 3  # tried, and retried: a redirect is a failure
    assert elsewhere.posts == [] and dropped.posts == []
    states = dict(WebhookDelivery.objects.values_list("url", "state"))
    assert states == {redirecting.url: OutboxState.PENDING, dropped.url: OutboxState.SKIPPED}
    redirected = WebhookDelivery.objects.get(url=redirecting.url)
    assert redirected.response_status == 302 and "not followed" in redirected.last_error


def test_webhook_urls_without_a_secret_stop_the_settings_from_loading():
    env = {**os.environ, "QUORUM_WEBHOOK_URLS": "https://chat.example.com/hook"}
    env.pop("QUORUM_WEBHOOK_SECRET", None)
    result = subprocess.run(
        [sys.executable, "-c", "import quorum.settings"],
        env=env,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "set QUORUM_WEBHOOK_SECRET" in result.stderr


def test_a_redis_outage_at_commit_loses_no_webhook(
    hooks, receivers, requester, committed, settings, simple_worker
):
    deploy = receivers()
    settings.QUORUM_WEBHOOK_URLS = [deploy.url]
    reachable = settings.RQ_QUEUES
    nothing_listens = f"redis://127.0.0.1:{free_port()}/10"
    settings.RQ_QUEUES = {name: {**c, "URL": nothing_listens} for name, c in reachable.items()}

    cancelled_request(requester, committed)

    settings.RQ_QUEUES = reachable
    assert django_rq.get_queue(notify.QUEUE).count == 0
    hooks.enqueue(webhooks_out.sweep, kwargs={"now": timezone.now() + timedelta(minutes=2)})
    simple_worker(hooks)

    assert deploy.events() == ["request.cancelled"]
