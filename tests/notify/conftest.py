"""Fixtures of the notification tests: the cast's addresses, and a worker that sends the mail."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from reviews import notify
from reviews.execution import jobs
from tests.mail import MAIL_BASE_URL as BASE_URL


@pytest.fixture
def mailroom(policies, settings, mailoutbox, rq_queue):
    """Everyone in the cast has an address; returns the emptied notifications queue."""
    settings.QUORUM_BASE_URL = BASE_URL
    settings.QUORUM_NOTIFY_RETRY_INTERVALS = [0, 0]  # three tries, no waiting
    for user in get_user_model().objects.all():
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    rq_queue(jobs.QUEUE)  # approvals queue transitions there; these tests leave them be
    return rq_queue(notify.QUEUE)


@pytest.fixture
def deliver(mailroom, simple_worker):
    """Runs the notifications queue with a real worker; returns and clears the mail it sent."""

    def run() -> list:
        simple_worker(mailroom)
        sent = list(mail.outbox)
        mail.outbox.clear()
        return sent

    return run
