"""Staff are mailed once per streak of failed registry syncs (real MLflow, real worker, outbox)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from quorum.localservices import free_port
from registry.mlflow_client import RegistryClient
from registry.sync import SyncError, sync_registry
from reviews import notify
from reviews.execution.sync_health import ACTION
from reviews.models import AuditEvent, Notification

pytestmark = pytest.mark.django_db

BASE_URL = "https://quorum.example.com"


@pytest.fixture
def staff_mailroom(cast, settings, mailoutbox, rq_queue):
    """Everyone has an address (admin is the only staff); returns the emptied mail queue."""
    settings.QUORUM_BASE_URL = BASE_URL
    settings.QUORUM_NOTIFY_RETRY_INTERVALS = []
    for user in cast.values():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    return rq_queue(notify.QUEUE)


@pytest.fixture
def fail(django_capture_on_commit_callbacks, monkeypatch):
    """`fail(n)`: n syncs against an MLflow nobody answers at, each failing as in an outage."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = RegistryClient(f"http://127.0.0.1:{free_port()}")

    def run(times: int = 1) -> None:
        for _ in range(times):
            with django_capture_on_commit_callbacks(execute=True), pytest.raises(SyncError):
                sync_registry(client=down)

    return run


def reported() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=ACTION).order_by("sequence"))


def test_staff_are_mailed_once_when_syncs_keep_failing(staff_mailroom, fail, simple_worker):
    fail(2)
    assert reported() == []

    fail(1)
    fail(2)  # the same streak: no second mail

    [event] = reported()
    assert event.actor == "system" and event.details["failures"] == 3
    assert "Connection refused" in event.details["error"]
    simple_worker(staff_mailroom)
    [message] = mail.outbox
    assert message.to == ["admin@example.com"]
    assert message.subject.startswith("[Quorum] Registry sync failed 3 times in a row: MLflow")
    assert "failed 3 times in a row, and none has succeeded yet" in message.body
    assert BASE_URL + reverse("admin:registry_syncrun_changelist") in message.body
    assert Notification.objects.get().kind == "sync_failing"


def test_a_successful_sync_ends_the_streak_and_the_next_one_is_mailed_again(
    staff_mailroom, fail, mlflow_client, settings
):
    settings.QUORUM_SYNC_FAILURE_MAIL_AFTER = 2
    fail(2)
    sync_registry(client=mlflow_client)
    fail(1)
    assert len(reported()) == 1

    fail(1)

    first, second = reported()
    assert second.details["failures"] == 2 and second.details["last_success"]
    assert Notification.objects.filter(kind="sync_failing").count() == 2


def test_the_mail_can_be_turned_off(staff_mailroom, fail, settings):
    settings.QUORUM_SYNC_FAILURE_MAIL_AFTER = 0

    fail(4)

    assert reported() == [] and not Notification.objects.exists()
