"""Email notifications: who gets which mail, sent by a real RQ worker, once per event and person.

The review engine acts for real (requests, votes, expiry, cancel, the transition job against a real
MLflow server, the registry change classifier); the mail goes through Django's locmem backend.
"""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_rq.cron import DjangoCronScheduler

from quorum.localservices import free_port
from registry.models import ChangeKind, RegistryChange
from reviews import notify
from reviews.decisions import deciding, opening, voting
from reviews.execution import jobs, registry_events
from reviews.models import (
    AuditEvent,
    Notification,
    NotificationPreference,
    OutboxState,
    TransitionRequest,
)
from reviews.notify import outbox
from tests.factories import make_mirror

pytestmark = pytest.mark.django_db

BASE_URL = "https://quorum.example.com"
APPROVERS = {"lead", "scientist1", "scientist2", "scientist3"}


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


def to(messages) -> set[str]:
    """The usernames the messages went to; each message has exactly one recipient."""
    assert all(len(m.to) == 1 for m in messages)
    names = [m.to[0].split("@")[0] for m in messages]
    assert len(names) == len(set(names)), f"someone got two mails: {sorted(names)}"
    return set(names)


def subjects(messages) -> set[str]:
    return {m.subject for m in messages}


def html(message) -> str:
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


def create(requester, committed, **kwargs) -> TransitionRequest:
    with committed():
        return opening.request_create(
            model=kwargs.pop("model", "fraud-detector"),
            version=kwargs.pop("version", 2),
            target=kwargs.pop("target", "Production"),
            requester=requester,
            **kwargs,
        )


def vote(request, user, committed, decision="approve", comment=""):
    with committed():
        voting.vote_cast(request_id=request.pk, user=user, decision=decision, comment=comment)


def link(request) -> str:
    return BASE_URL + reverse("reviews:request_detail", args=[request.pk])


# -- request opened -----------------------------------------------------------------------------


def test_a_new_request_asks_every_eligible_approver_but_the_requester(
    mailroom, deliver, requester, committed
):
    make_mirror()
    request = create(requester, committed, comment="Retrained on October data")

    assert mail.outbox == []  # nothing is sent where the request was made: a worker sends it
    sent = deliver()

    assert to(sent) == APPROVERS
    assert subjects(sent) == {"[Quorum] fraud-detector v2 → Production needs your review"}
    message = sent[0]
    assert link(request) in message.body and f'href="{link(request)}"' in html(message)
    # The evidence: who asks, gate results, candidate against the version it would replace.
    assert "requester asks for fraud-detector v2 to go to Production" in message.body
    assert "Retrained on October data" in message.body
    assert "[pass] accuracy 0.9100 >= 0.8000 (required)" in message.body
    assert "accuracy: 0.9100 vs 0.8900 (+0.0200)" in message.body
    assert "Metrics, v2 vs v1 at Production" in message.body
    assert "ml-leads 0/1" in message.body and "data-science 0/2" in message.body
    assert "accuracy 0.9100 &gt;= 0.8000" in html(message)
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"


def test_a_request_its_gates_reject_at_once_asks_nobody_and_tells_the_requester(
    mailroom, deliver, requester, committed
):
    make_mirror(
        versions={1: ("Production", {"accuracy": 0.89, "f1": 0.87}), 2: ("None", {"f1": 0.9})}
    )
    request = create(requester, committed)
    assert request.decision == "rejected"

    sent = deliver()

    assert to(sent) == {"requester"}
    assert subjects(sent) == {"[Quorum] fraud-detector v2 → Production rejected"}
    assert "by the policy's gates" in sent[0].body
    assert "the candidate's run never logged accuracy" in sent[0].body
    asked = Notification.objects.filter(kind="review_needed")
    assert set(asked.values_list("state", flat=True)) == {OutboxState.SKIPPED}
    assert asked.first().last_error == "the request is already rejected"


def test_a_request_rejected_for_a_nan_metric_says_so_in_its_mail(
    mailroom, deliver, requester, committed
):
    make_mirror(
        versions={
            1: ("Production", {"accuracy": 0.89, "f1": "Infinity"}),
            2: ("None", {"accuracy": "NaN", "f1": 0.9}),
        }
    )
    create(requester, committed)

    [message] = deliver()

    assert "[FAIL] accuracy is NaN: not a finite number (required)" in message.body
    assert "accuracy: NaN vs 0.8900" in message.body
    assert "f1: 0.9000 vs ∞" in message.body
    assert "accuracy is NaN" in html(message) and ">NaN</td>" in html(message)


# -- decisions ----------------------------------------------------------------------------------


def approve_all(request, users, committed):
    for name in ("lead", "scientist1", "scientist2"):
        vote(request, users[name], committed)


def reject(request, users, committed):
    vote(request, users["scientist1"], committed, "reject", "f1 dropped on the holdout set")


def expire(request, users, committed):
    vote(request, users["lead"], committed)
    with committed():
        deciding.requests_expire_overdue(now=request.expires_at + timedelta(seconds=1))


def cancel(request, users, committed):
    vote(request, users["scientist2"], committed)
    with committed():
        deciding.request_cancel(request_id=request.pk, user=users["requester"])


@pytest.mark.parametrize(
    ("act", "decision", "told", "said"),
    [
        (approve_all, "approved", {"lead", "scientist1", "scientist2"}, "Quorum reached"),
        (reject, "rejected", {"scientist1"}, "f1 dropped on the holdout set"),
        (expire, "expired", {"lead"}, "No decision before"),
        (cancel, "cancelled", {"scientist2"}, "Cancelled by requester"),
    ],
)
def test_a_decision_goes_to_the_requester_and_everyone_who_voted_only(
    mailroom, deliver, cast, committed, act, decision, told, said
):
    make_mirror()
    request = create(cast["requester"], committed)
    deliver()  # the review requests

    act(request, cast, committed)
    sent = deliver()

    assert to(sent) == {"requester"} | told
    assert subjects(sent) == {f"[Quorum] fraud-detector v2 → Production {decision}"}
    assert said in sent[0].body and said in html(sent[0])
    assert link(request) in sent[0].body


def test_an_approval_mail_names_the_whole_quorum_not_the_last_voter(
    mailroom, deliver, cast, committed
):
    make_mirror()
    request = create(cast["requester"], committed)
    deliver()

    approve_all(request, cast, committed)
    sent = deliver()

    assert "was approved by lead, scientist1 and scientist2." in sent[0].body
    assert "<strong>approved</strong> by lead, scientist1 and scientist2." in html(sent[0])


def test_an_auto_approve_gate_that_did_not_fire_is_neutral_in_the_mail(
    mailroom, deliver, cast, committed
):
    make_mirror()  # v2's accuracy 0.91 is short of the staging policy's auto-approve 0.97
    create(cast["requester"], committed, target="Staging")
    [message] = [m for m in deliver() if m.to == ["scientist1@example.com"]]

    assert "[not auto-approved: needs sign-off] accuracy 0.9100, not > 0.9700" in message.body
    assert "FAIL" not in message.body
    assert "#b3261e" not in html(message)  # nothing in the failure red


# -- execution: a real transition job against a real MLflow server ------------------------------


def test_a_transition_done_tells_the_requester(
    promoted, mailroom, deliver, cast, committed, run_transition
):
    request = create(cast["requester"], committed, model=promoted, version=3)
    approve_all(request, cast, committed)
    deliver()

    run_transition(request)
    sent = deliver()

    assert to(sent) == {"requester"}
    assert subjects(sent) == {f"[Quorum] {promoted} v3 is now in Production"}
    assert "Archived: v1." in sent[0].body


def test_a_transition_that_fails_for_good_tells_the_requester_and_staff(
    mlflow_server, mailroom, deliver, cast, committed, unique_name, run_transition
):
    make_mirror(name=unique_name)  # in the mirror, but MLflow has no such model
    request = create(cast["requester"], committed, model=unique_name)
    approve_all(request, cast, committed)
    deliver()

    run_transition(request)
    sent = deliver()

    request.refresh_from_db()
    assert request.execution == "failed"
    assert to(sent) == {"requester", "admin"}
    assert subjects(sent) == {
        f"[Quorum] {unique_name} v2 → Production transition failed: "
        f"{unique_name} version 2 no longer exists in MLflow."
    }
    # The version is gone: no retry can help, and the mail does not suggest one.
    assert "no retry can help" in sent[0].body
    assert "an admin can retry" not in sent[0].body
    assert AuditEvent.objects.get(action="transition.failed").details["permanent"] is True


# -- reminders and escalation -------------------------------------------------------------------


def run_periodic(mailroom, simple_worker, when) -> None:
    """The cron job's reminder and escalation pass, at `when`, run by the worker."""
    mailroom.enqueue(notify.remind_and_escalate, kwargs={"now": when})
    simple_worker(mailroom)


def test_a_reminder_goes_to_approvers_who_have_not_voted_unless_they_turned_it_off(
    mailroom, deliver, cast, committed, simple_worker, settings
):
    settings.QUORUM_REMINDER_BEFORE = 24 * 3600
    make_mirror()
    request = create(cast["requester"], committed)
    vote(request, cast["scientist1"], committed)
    deliver()
    settings_page = Client()
    settings_page.force_login(cast["scientist3"])
    settings_page.post(reverse("reviews:notification_settings"), {})  # unticked: no reminders

    with committed():
        run_periodic(mailroom, simple_worker, request.expires_at - timedelta(hours=25))
    assert deliver() == []  # not yet in the last 24 hours

    with committed():
        run_periodic(mailroom, simple_worker, request.expires_at - timedelta(hours=23))
    sent = deliver()

    assert to(sent) == {"lead", "scientist2"}
    assert subjects(sent) == {"[Quorum] Reminder: fraud-detector v2 → Production expires in 23 h"}
    assert "you have not voted on it yet" in sent[0].body
    assert "turn reminder emails off" in sent[0].body

    with committed():
        run_periodic(mailroom, simple_worker, request.expires_at - timedelta(hours=2))
    assert deliver() == []  # once per request
    assert AuditEvent.objects.filter(action="notify.reminder").count() == 1


def test_a_reminder_written_before_someone_voted_skips_them(
    mailroom, deliver, cast, committed, settings
):
    make_mirror()
    request = create(cast["requester"], committed)
    deliver()
    with committed():
        notify.remind_and_escalate(now=request.expires_at - timedelta(hours=1))
    vote(request, cast["lead"], committed)  # votes before the worker gets to the reminder

    sent = [m for m in deliver() if "Reminder" in m.subject]  # staff hear of no vote too

    assert to(sent) == {"scientist1", "scientist2", "scientist3"}
    skipped = Notification.objects.get(kind="reminder", recipient=cast["lead"])
    assert (skipped.state, skipped.last_error) == ("skipped", "the recipient has voted since")


def test_a_reminder_goes_to_an_approver_whose_approval_went_stale(
    mailroom, deliver, cast, committed, simple_worker
):
    make_mirror()
    request = create(cast["requester"], committed)
    for name in ("lead", "scientist1"):
        vote(request, cast[name], committed)
    with committed():
        voting.approvals_mark_stale(request, reason="The candidate's metrics changed in MLflow.")
        vote(request, cast["scientist2"], committed)
    deliver()

    with committed():
        run_periodic(mailroom, simple_worker, request.expires_at - timedelta(hours=1))
    sent = [m for m in deliver() if "Reminder" in m.subject]

    # lead and scientist1 voted, but their approvals no longer count; scientist2's does.
    assert to(sent) == {"lead", "scientist1", "scientist3"}


def test_a_reminder_to_a_stale_voter_is_not_skipped_as_voted(mailroom, deliver, cast, committed):
    make_mirror()
    request = create(cast["requester"], committed)
    deliver()
    with committed():
        notify.remind_and_escalate(now=request.expires_at - timedelta(hours=1))
    vote(request, cast["lead"], committed)
    with committed():
        voting.approvals_mark_stale(request, reason="The candidate's metrics changed in MLflow.")

    deliver()

    reminder = Notification.objects.get(kind="reminder", recipient=cast["lead"])
    assert (reminder.state, reminder.last_error) == ("sent", "")


def test_a_request_whose_every_approval_went_stale_is_escalated_at_half_its_lifetime(
    mailroom, deliver, cast, committed, simple_worker
):
    make_mirror()
    request = create(cast["requester"], committed)
    vote(request, cast["lead"], committed)
    with committed():
        voting.approvals_mark_stale(request, reason="The candidate's metrics changed in MLflow.")
    deliver()
    half = request.created_at + (request.expires_at - request.created_at) / 2

    with committed():
        run_periodic(mailroom, simple_worker, half + timedelta(minutes=5))
    sent = deliver()

    assert to(sent) == {"admin"}
    assert "nobody has voted on it since its evidence changed" in sent[0].body


def test_a_request_nobody_voted_on_by_half_its_lifetime_is_escalated_to_staff_once(
    mailroom, deliver, cast, committed, simple_worker
):
    make_mirror()
    request = create(cast["requester"], committed)
    voted_on = create(cast["requester"], committed, version=1, target="@champion")
    vote(voted_on, cast["lead"], committed)
    deliver()
    half = request.created_at + (request.expires_at - request.created_at) / 2

    with committed():
        run_periodic(mailroom, simple_worker, half - timedelta(minutes=5))
    assert deliver() == []

    with committed():
        run_periodic(mailroom, simple_worker, half + timedelta(minutes=5))
    sent = deliver()

    assert to(sent) == {"admin"}
    assert subjects(sent) == {
        "[Quorum] fraud-detector v2 → Production has no vote at half its review time"
    }
    assert "nobody has voted on it" in sent[0].body and link(request) in sent[0].body

    with committed():
        run_periodic(mailroom, simple_worker, half + timedelta(hours=5))
    assert deliver() == []


# -- out of band --------------------------------------------------------------------------------


def test_a_change_made_in_mlflow_directly_is_reported_to_staff(
    mailroom, deliver, committed, requester
):
    versions = make_mirror()
    RegistryChange.objects.create(
        model=versions[2].model,
        version=versions[2],
        kind=ChangeKind.STAGE_CHANGED,
        old="None",
        new="Staging",
    )

    with committed():
        registry_events.classify_pending_changes()
    sent = deliver()

    assert to(sent) == {"admin"}
    assert subjects(sent) == {"[Quorum] fraud-detector v2 moved to Staging outside Quorum"}
    version_page = reverse("registry:version_detail", args=["fraud-detector", 2])
    assert BASE_URL + version_page in sent[0].body
    assert "no Quorum transition made that change" in sent[0].body


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


# -- what is in a mail ---------------------------------------------------------------------------


def test_mlflow_text_in_a_mail_is_escaped_in_html_and_kept_on_one_line_in_the_subject(
    mailroom, deliver, requester, committed
):
    name = "<b>fraud</b>\nBcc: x@example.com"
    make_mirror(name=name)
    create(requester, committed, model=name, comment="<script>alert(1)</script>")

    sent = deliver()

    # The line break is a control character: shown as a marker, never a second header line.
    assert subjects(sent) == {
        "[Quorum] <b>fraud</b>⟨U+000A⟩Bcc: x@example.com v2 → Production needs your review"
    }
    page = html(sent[0])
    assert "<b>fraud</b>" not in page and "&lt;b&gt;fraud&lt;/b&gt;" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<script>alert(1)</script>" in sent[0].body  # plain text is plain text


def test_the_link_in_a_mail_asks_for_a_login_and_changes_nothing(
    mailroom, deliver, requester, lead, committed, client
):
    make_mirror()
    request = create(requester, committed)
    [message] = [m for m in deliver() if m.to == ["lead@example.com"]]
    path = link(request).removeprefix(BASE_URL)
    assert path in message.body
    events = AuditEvent.objects.count()

    anonymous = client.get(path)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/accounts/login/?next=/reviews/{request.pk}/"

    client.force_login(lead)
    page = client.get(path)
    assert page.status_code == 200 and "fraud-detector" in page.content.decode()

    request.refresh_from_db()
    assert request.decision == "pending" and not request.votes.exists()
    assert AuditEvent.objects.count() == events


# -- the settings page ---------------------------------------------------------------------------


def test_the_settings_page_turns_reminders_off_and_on(scientist1, client):
    url = reverse("reviews:notification_settings")
    client.force_login(scientist1)

    page = client.get(url)
    assert page.status_code == 200
    assert 'name="reminders"' in page.content.decode() and "checked" in page.content.decode()

    response = client.post(url, {}, follow=True)  # an unticked box is not sent
    assert "Reminder emails are off." in response.content.decode()
    assert NotificationPreference.objects.get(user=scientist1).reminders is False

    client.post(url, {"reminders": "on"})
    assert NotificationPreference.objects.get(user=scientist1).reminders is True


def test_the_settings_page_needs_a_login_and_a_csrf_token(scientist1):
    url = reverse("reviews:notification_settings")

    anonymous = Client().post(url, {})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(scientist1)
    assert strict.post(url, {}).status_code == 403
    assert strict.put(url).status_code in (403, 405)
    assert not NotificationPreference.objects.exists()


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
