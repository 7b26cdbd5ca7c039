"""Sending mail (reviews/notify/sending.py, outbox.py, backends.py): once per event and recipient
however often a job runs, nothing lost when the SMTP server or Redis is down, mail that gave up
sent again from the admin, the cron job's queue, and the transports EMAIL_URL names."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_rq.cron import DjangoCronScheduler

from quorum.localservices import free_port
from reviews import notify
from reviews.models import AuditEvent, Notification, OutboxState
from reviews.notify import outbox
from tests.factories import make_mirror
from tests.mail import STANDARD_APPROVERS as APPROVERS
from tests.mail import mail_link as link
from tests.mail import mail_recipients as to
from tests.mail import mail_subjects as subjects
from tests.mail import request_committed as create

pytestmark = pytest.mark.django_db


# -- once per event and recipient; nothing lost -------------------------------------------------


def pending_mail() -> set[str]:
    rows = Notification.objects.filter(state=OutboxState.PENDING)
    return set(rows.values_list("recipient__username", flat=True))


def test_a_job_run_twice_sends_each_mail_once(mailroom, deliver, requester, committed):
    make_mirror()
    request = create(requester, committed)
    event = AuditEvent.objects.get(action="request.created", request=request)
    mailroom.enqueue(notify.send_event_mail, event.pk)  # a duplicate of the queued job

    sent = deliver()
    mailroom.enqueue(notify.send_event_mail, event.pk)  # and one more, after the fact
    sent += deliver()

    assert to(sent) == APPROVERS  # `to` fails if anyone got two
    assert Notification.objects.filter(state=OutboxState.SENT).count() == 4


def test_the_mail_job_is_queued_under_the_path_every_release_runs(
    mailroom, deliver, requester, committed
):
    # A job waits in Redis by its function's dotted path: one release may queue what the next runs.
    make_mirror()
    create(requester, committed)

    assert [job.func_name for job in mailroom.get_jobs()] == ["reviews.notify.send_event_mail"]
    assert to(deliver()) == APPROVERS


def test_a_retried_job_sends_only_what_failed(mailroom, deliver, cast, committed):
    make_mirror()
    broken = cast["scientist3"]
    broken.email = "scientist3@example.com\nBcc: everyone@example.com"  # refused as a header
    broken.save()
    request = create(cast["requester"], committed)

    sent = deliver()  # the job runs three times: once, and its two retries

    assert to(sent) == APPROVERS - {"scientist3"}
    row = Notification.objects.get(recipient=broken)
    assert (row.state, row.attempts) == (OutboxState.PENDING, 3)
    assert "BadHeaderError" in row.last_error
    failed = mailroom.failed_job_registry.get_job_ids()
    assert [job_id for job_id in failed if f"mail-event-{row.event_id}-" in job_id]

    broken.email = "scientist3@example.com"
    broken.save()
    mailroom.enqueue(notify.sweep_outbox, kwargs={"now": timezone.now() + timedelta(hours=2)})
    sent = deliver()

    assert to(sent) == {"scientist3"}
    assert subjects(sent) == {"[Quorum] fraud-detector v2 → Production needs your review"}
    assert link(request) in sent[0].body
    assert pending_mail() == set()


def test_mail_the_smtp_server_refused_is_sent_once_it_answers(
    mailroom, deliver, requester, committed, settings
):
    make_mirror()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    settings.EMAIL_TIMEOUT = 2
    create(requester, committed)

    deliver()

    assert pending_mail() == APPROVERS
    assert set(Notification.objects.values_list("attempts", flat=True)) == {3}

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mailroom.enqueue(notify.sweep_outbox, kwargs={"now": timezone.now() + timedelta(hours=2)})
    sent = deliver()

    assert to(sent) == APPROVERS
    assert pending_mail() == set()


def test_mail_that_gave_up_is_sent_again_from_the_admin_once_the_server_answers(
    mailroom, deliver, requester, committed, settings, monkeypatch, admin_client
):
    make_mirror()
    monkeypatch.setattr(outbox, "MAX_ATTEMPTS", 3)  # the job's three tries use them up
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    settings.EMAIL_TIMEOUT = 2
    create(requester, committed)
    deliver()
    gave_up = Notification.objects.filter(state=OutboxState.FAILED)
    assert set(gave_up.values_list("recipient__username", flat=True)) == APPROVERS
    # The sweep leaves mail that gave up alone, however late it runs.
    mailroom.enqueue(notify.sweep_outbox, kwargs={"now": timezone.now() + timedelta(days=1)})
    assert deliver() == []
    sent_already = Notification.objects.create(
        event=gave_up[0].event, kind="decided", key="sent-already", recipient=requester
    )
    Notification.objects.filter(pk=sent_already.pk).update(state=OutboxState.SENT)
    chosen = [*gave_up.values_list("pk", flat=True), sent_already.pk]

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = admin_client.post(
        reverse("admin:reviews_notification_changelist"),
        {"action": "send_again", "_selected_action": chosen, "index": "0"},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == [
        "4 put back in line; the next outbox sweep sends them.",
        "1 left as it was: only deliveries that gave up can be sent again.",
    ]
    assert Notification.objects.get(pk=sent_already.pk).state == OutboxState.SENT
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor) == ("outbox.send_again", "admin")
    assert event.details == {"outbox": "notifications", "ids": sorted(chosen[:-1])}
    # Mail gives up hours after it was written; here a minute on is enough for the sweep.
    mailroom.enqueue(notify.sweep_outbox, kwargs={"now": timezone.now() + timedelta(minutes=2)})
    sent = deliver()
    assert to(sent) == APPROVERS
    assert not Notification.objects.exclude(state=OutboxState.SENT).exists()


def test_redis_down_when_the_event_commits_the_sweep_sends_it_later(
    mailroom, deliver, requester, committed, settings, caplog
):
    make_mirror()
    reachable = settings.RQ_QUEUES
    nothing_listens = f"redis://127.0.0.1:{free_port()}/10"
    settings.RQ_QUEUES = {name: {**c, "URL": nothing_listens} for name, c in reachable.items()}

    request = create(requester, committed)  # commits; the enqueue fails and is logged

    assert "the sweep will" in caplog.text
    settings.RQ_QUEUES = reachable
    assert mailroom.count == 0 and pending_mail() == APPROVERS

    # The cron job's sweep leaves fresh mail to its own job for a minute...
    mailroom.enqueue(notify.sweep_outbox)
    assert deliver() == []
    # ...and sends it once that minute has passed.
    mailroom.enqueue(notify.sweep_outbox, kwargs={"now": timezone.now() + timedelta(minutes=2)})
    sent = deliver()

    assert to(sent) == APPROVERS
    assert link(request) in sent[0].body


def test_the_cron_scheduler_runs_the_periodic_job_on_the_notifications_queue(
    mailroom, deliver, settings
):
    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("quorum.cron")

    [job] = [job for job in scheduler.get_jobs() if job.func_name == "reviews.notify.periodic"]
    assert (job.queue_name, job.cron) == (notify.QUEUE, settings.QUORUM_NOTIFY_CRON)
    mailroom.enqueue(job.func_name)
    deliver()
    [finished] = mailroom.finished_job_registry.get_job_ids()
    result = mailroom.fetch_job(finished).return_value()
    assert result == {"reminded": 0, "escalated": 0, "mail_swept": 0, "webhooks_swept": 0}


# -- transport -----------------------------------------------------------------------------------


def test_the_file_transport_writes_one_eml_file_per_mail(
    mailroom, simple_worker, requester, committed, settings, tmp_path
):
    settings.EMAIL_BACKEND = "reviews.notify.EmlFileBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    make_mirror()
    request = create(requester, committed)

    simple_worker(mailroom)

    files = sorted((tmp_path / "mail").iterdir())
    assert [f.suffix for f in files] == [".eml"] * len(APPROVERS)
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert {m["To"] for m in parsed} == {f"{name}@example.com" for name in APPROVERS}
    assert {m["Subject"].strip() for m in parsed} == {
        "[Quorum] fraud-detector v2 → Production needs your review"
    }
    text = parsed[0].get_body(preferencelist=("plain",)).get_content()
    assert link(request) in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "console.EmailBackend None 25 False False"),
        (
            "submission://ann:s3cret@smtp.example.com",
            "smtp.EmailBackend smtp.example.com 587 True False",
        ),
        (
            "smtp://smtp.example.com:465?ssl=True",
            "smtp.EmailBackend smtp.example.com 465 False True",
        ),
        ("file:///var/mail", "notify.EmlFileBackend var/mail"),
        ("carrier-pigeon://coop", "is not one of"),
    ],
)
def test_email_url_sets_the_transport(url, expected):
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    show = (
        "import quorum.settings as s;"
        "print(s.EMAIL_BACKEND.rsplit('.', 2)[-2] + '.' + s.EMAIL_BACKEND.rsplit('.', 1)[-1],"
        " s.EMAIL_FILE_PATH.removeprefix(str(s.PROJECT_DIR) + '/') if 'EmlFile' in s.EMAIL_BACKEND"
        ' else f\'{s.EMAIL_HOST if s.EMAIL_HOST != "localhost" else None} {s.EMAIL_PORT}'
        " {s.EMAIL_USE_TLS} {s.EMAIL_USE_SSL}')"
    )
    result = subprocess.run(
        [sys.executable, "-c", show],
        env={**os.environ, "EMAIL_URL": url},
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert expected in result.stdout + result.stderr
