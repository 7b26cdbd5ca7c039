"""Reminders and escalation (reviews/notify/reminders.py): approvers who have not voted, or whose
approval went stale, are reminded once before a request expires; a request nobody voted on by half
its lifetime goes to staff once. The cron job's pass runs in a real RQ worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from reviews import notify
from reviews.decisions import voting
from reviews.models import AuditEvent, Notification
from tests.factories import make_mirror
from tests.mail import mail_link as link
from tests.mail import mail_recipients as to
from tests.mail import mail_subjects as subjects
from tests.mail import request_committed as create
from tests.mail import vote_committed as vote

pytestmark = pytest.mark.django_db


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
