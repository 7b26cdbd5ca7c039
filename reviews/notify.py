"""Email notifications: who hears about what, and how each mail is sent exactly once.

| audit event                       | mail          | to                                        |
| --------------------------------- | ------------- | ----------------------------------------- |
| request.created                   | review needed | every eligible approver but the requester |
| request.approved, .rejected,      | decided       | the requester and everyone who voted      |
|   .expired, .cancelled            |               |                                           |
| transition.done                   | done          | the requester                             |
| transition.failed (the last try)  | failed        | the requester and staff                   |
| notify.reminder (periodic job)    | reminder      | eligible approvers who have not voted and |
|                                   |               |   have not turned reminders off (a stale  |
|                                   |               |   approval is not a vote: see below)      |
| notify.escalation (periodic job)  | escalation    | staff, when no vote counts at half-life   |
| registry.out_of_band              | out of band   | staff                                     |
| registry.sync_failing             | sync failing  | staff                                     |

How a mail gets out, and only once:

1. `on_event_recorded` runs inside the transaction that appended the audit event and writes one
   `Notification` row per recipient (the outbox). The row exists exactly when the event does, and
   a unique (key, recipient) constraint means a recipient gets one row per event (one per request
   for reminders and escalations).
2. After commit, `send_event_mail(event_id)` is queued on the `notifications` queue. If Redis is
   down the enqueue is only logged: the rows are in the database.
3. A worker claims each row with a conditional UPDATE (`claimed_until`), sends it, and marks it
   sent. A retried or duplicated job finds it sent and skips it; two workers never both claim it.
   A failed send is recorded and the job raises, so RQ retries it with backoff.
4. `sweep_outbox`, run every minute by the cron scheduler, sends whatever is still pending (the
   enqueue was lost, a worker died holding a claim, the retries ran out).

"Has voted" means has a current vote: an approval that went stale (the evidence changed) no longer
counts, and its voter is reminded like anyone who has yet to vote.

A worker that dies after the SMTP server accepted a mail but before it marked the row sent sends
that mail again once the claim lapses: at least once, and once in every other case.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from registry import metrics, names

from . import audit, webhooks_out
from .counting import progress
from .links import absolute, request_url
from .models import (
    AuditEvent,
    Decision,
    Notification,
    NotificationKind,
    NotificationPreference,
    OutboxState,
    TransitionRequest,
    Vote,
)
from .outbox import QUEUE as QUEUE  # the queue mail jobs run on
from .outbox import (
    SWEEP_BATCH,
    claim,
    due,
    enqueue,
    finish,
    job_id,
    release_failed,
    send_for_event,
)
from .services import required_groups

logger = logging.getLogger(__name__)

# Metrics a mail shows, main metrics first.
MAIL_METRICS = 6

Kind = NotificationKind

ACTION_KINDS = {
    "request.created": Kind.REVIEW_NEEDED,
    "request.approved": Kind.DECIDED,
    "request.rejected": Kind.DECIDED,
    "request.expired": Kind.DECIDED,
    "request.cancelled": Kind.DECIDED,
    "transition.done": Kind.DONE,
    "transition.failed": Kind.FAILED,
    "notify.reminder": Kind.REMINDER,
    "notify.escalation": Kind.ESCALATION,
    "registry.out_of_band": Kind.OUT_OF_BAND,
    "registry.sync_failing": Kind.SYNC_FAILING,
}
# Mail about the registry rather than a request: it goes to staff.
ABOUT_THE_REGISTRY = {Kind.OUT_OF_BAND, Kind.SYNC_FAILING}
# Mail that asks for a vote: pointless once the request is decided.
ASKS_FOR_A_VOTE = {Kind.REVIEW_NEEDED, Kind.REMINDER, Kind.ESCALATION}


# -- who gets what -----------------------------------------------------------------------------


def on_event_recorded(sender, event: AuditEvent, **kwargs) -> None:
    """Writes the event's mail to the outbox; queues sending it once the event commits."""
    if outbox_mail(event):
        transaction.on_commit(lambda: enqueue_mail(event))


def enqueue_mail(event: AuditEvent) -> bool:
    return enqueue(send_event_mail, event.pk, job_id=job_id("mail", event), what="mail")


def outbox_mail(event: AuditEvent) -> int:
    """Writes a pending Notification for each recipient of `event`; returns how many it wrote."""
    kind = ACTION_KINDS.get(event.action)
    if kind is None:
        return 0
    request = event.request if event.request_id else None
    if request is None and kind not in ABOUT_THE_REGISTRY:
        return 0
    users = list(recipients(kind, request).values_list("pk", flat=True))
    if not users:
        return 0
    key = (
        f"{kind}-{request.pk}" if kind in (Kind.REMINDER, Kind.ESCALATION) else f"event-{event.pk}"
    )
    Notification.objects.bulk_create(
        [Notification(event=event, kind=kind, key=key, recipient_id=pk) for pk in users],
        ignore_conflicts=True,
    )
    return len(users)


def recipients(kind: str, request: TransitionRequest | None) -> QuerySet:
    """The users who get `kind` of mail about `request`: active, with an address."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    staff = Q(is_staff=True)
    if kind in ABOUT_THE_REGISTRY or kind == Kind.ESCALATION:
        chosen = users.filter(staff)
    elif kind == Kind.REVIEW_NEEDED:
        chosen = approvers(request, users)
    elif kind == Kind.REMINDER:
        chosen = (
            approvers(request, users)
            .exclude(pk__in=current_voters(request))
            .exclude(notification_preference__reminders=False)
        )
    elif kind == Kind.DECIDED:
        chosen = users.filter(Q(pk=request.requester_id) | Q(votes__request=request))
    elif kind == Kind.DONE:
        chosen = users.filter(pk=request.requester_id)
    elif kind == Kind.FAILED:
        chosen = users.filter(Q(pk=request.requester_id) | staff)
    else:
        raise ValueError(f"no recipients for {kind!r}")
    return chosen.distinct()


def approvers(request: TransitionRequest, users: QuerySet) -> QuerySet:
    """Members of the request's required groups, but not its requester."""
    return users.filter(groups__name__in=required_groups(request)).exclude(pk=request.requester_id)


def current_voters(request: TransitionRequest) -> QuerySet:
    """The ids of the users whose vote on `request` counts: a stale approval's voter is asked
    again, as if they had not voted."""
    return Vote.objects.filter(request=request, stale=False).values("user_id")


def reminders_enabled(user) -> bool:
    return not NotificationPreference.objects.filter(user=user, reminders=False).exists()


# -- sending -----------------------------------------------------------------------------------


def send_event_mail(event_id: int) -> str:
    """RQ job: sends the event's pending mail. Safe to run twice; raises if some could not go."""
    return send_for_event(Notification, event_id, send)


def send(ids: list[int]) -> tuple[int, int, int]:
    """Claims and sends these notifications one by one; returns (sent, skipped, failed)."""
    sent = skipped = failed = 0
    rendered: dict[int, dict[str, str]] = {}
    rows = Notification.objects.filter(pk__in=ids).select_related(
        "recipient", "event__request__version__model", "event__request__requester"
    )
    for item in rows:
        if not claim(Notification, item.pk):
            continue  # sent, or being sent, by someone else
        try:
            reason = skip_reason(item)
            if reason:
                finish(item, OutboxState.SKIPPED, reason)
                skipped += 1
                continue
            if item.event_id not in rendered:
                rendered[item.event_id] = render(item.event, item.kind)
            message = rendered[item.event_id]
            mail = EmailMultiAlternatives(
                subject=message["subject"],
                body=message["text"],
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[item.recipient.email],
                headers={"Auto-Submitted": "auto-generated"},
            )
            mail.attach_alternative(message["html"], "text/html")
            mail.send()
        except Exception as error:  # whatever failed (template, transport) is recorded, retried
            release_failed(item, f"{type(error).__name__}: {error}")
            failed += 1
        else:
            finish(item, OutboxState.SENT)
            sent += 1
    return sent, skipped, failed


def skip_reason(item: Notification) -> str:
    """Why this mail should not go after all (things changed since it was written), or ""."""
    user, request = item.recipient, item.event.request if item.event.request_id else None
    if not user.is_active or not user.email:
        return "the recipient has no active account with an address"
    if item.kind in ASKS_FOR_A_VOTE and request is not None:
        request.refresh_from_db(fields=["decision"])
        if request.decision != Decision.PENDING:
            return f"the request is already {request.decision}"
    if item.kind == Kind.REMINDER:
        if current_voters(request).filter(user=user).exists():
            return "the recipient has voted since"
        if not reminders_enabled(user):
            return "the recipient turned reminders off"
    return ""


def sweep_outbox(*, now=None) -> int:
    """Sends pending mail nobody is sending (lost enqueue, dead worker, retries used up)."""
    ids = list(due(Notification, now=now).order_by("pk").values_list("pk", flat=True)[:SWEEP_BATCH])
    if not ids:
        return 0
    sent, skipped, failed = send(ids)
    logger.info("outbox sweep: %s sent, %s skipped, %s failed", sent, skipped, failed)
    return sent


# -- what a mail says ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricRow:
    name: str
    candidate: float | None
    baseline: float | None
    change: str
    worse: bool


def render(event: AuditEvent, kind: str) -> dict[str, str]:
    """Subject, plain text and HTML of `kind` of mail about `event`."""
    context = mail_context(event, kind)
    return {
        "subject": context["subject"],
        # Template tags leave blank lines behind; a mail reads better without runs of them.
        "text": re.sub(r"\n{3,}", "\n\n", render_to_string(f"emails/{kind}.txt", context)),
        "html": render_to_string(f"emails/{kind}.html", context),
    }


def mail_context(event: AuditEvent, kind: str) -> dict[str, Any]:
    request = event.request if event.request_id else None
    details = event.details or {}
    context: dict[str, Any] = {
        "kind": kind,
        "event": event,
        "details": details,
        "model_name": event.model_name,
        "version": event.version,
        "request": request,
        "reason": details.get("reason", ""),
        "error": details.get("error", ""),
    }
    if request is not None:
        votes = list(request.votes.select_related("user"))
        context.update(
            target=request.target,
            link=request_url(request.pk),
            gates=request.gate_results,
            metrics=metric_rows(request),
            baseline_version=request.baseline.version if request.baseline_id else None,
            progress=progress(request, votes),
            votes=votes,
            decision=request.get_decision_display(),
        )
    elif kind == Kind.SYNC_FAILING:
        context["link"] = absolute(reverse("admin:registry_syncrun_changelist"))
    elif event.version is not None:
        context["link"] = absolute(
            reverse("registry:version_detail", args=[event.model_name, event.version])
        )
    else:
        context["link"] = absolute(reverse("registry:model_detail", args=[event.model_name]))
    if kind in (Kind.REMINDER, Kind.ESCALATION):
        context["time_left"] = duration_words(details.get("seconds_left", 0))
    if kind == Kind.OUT_OF_BAND:
        from .guard import latest_probe

        # Whether this could have been refused: a registry without the guard lets anyone with
        # EDIT move protected targets, and the mail says so.
        context["guard_probe"] = latest_probe()
    context["subject"] = subject(kind, event, request, context)
    return context


def subject(kind: str, event: AuditEvent, request, context: dict) -> str:
    what = f"{names.as_text(event.model_name)} v{event.version}"
    if request is not None:
        what_to = f"{what} → {request.target}"
    if kind == Kind.REVIEW_NEEDED:
        text = f"{what_to} needs your review"
    elif kind == Kind.DECIDED:
        text = f"{what_to} {event.action.removeprefix('request.')}"
    elif kind == Kind.DONE:
        where = request.target if request.is_alias_target else f"in {request.target}"
        text = f"{what} is now {where}"
    elif kind == Kind.FAILED:
        error = (context["error"] or "unknown error").strip().splitlines()[0]
        text = f"{what_to} transition failed: {shorten(error, 120)}"
    elif kind == Kind.REMINDER:
        text = f"Reminder: {what_to} expires in {context['time_left']}"
    elif kind == Kind.ESCALATION:
        text = f"{what_to} has no vote at half its review time"
    elif kind == Kind.SYNC_FAILING:
        failures = context["details"].get("failures", 0)
        error = (context["error"] or "unknown error").strip().splitlines()[0]
        text = f"Registry sync failed {failures} times in a row: {shorten(error, 120)}"
    else:
        text = f"{what} {out_of_band_words(context['details'])} outside Quorum"
    # MLflow names are untrusted: a line break in a subject would be a header injection.
    return "[Quorum] " + " ".join(text.split())


def out_of_band_words(details: dict) -> str:
    change, old, new = details.get("change"), details.get("old"), details.get("new")
    if change == "alias_added":
        return f"got alias @{new}"
    if change == "alias_removed":
        return f"lost alias @{old}"
    return f"moved to {new}"


def metric_rows(request: TransitionRequest) -> list[MetricRow]:
    candidate, baseline = request.candidate_metrics or {}, request.baseline_metrics or {}
    rows = []
    for name in metrics.ordered_keys(set(candidate) | set(baseline), limit=MAIL_METRICS):
        c, b = candidate.get(name), baseline.get(name)
        d = metrics.delta(name, c, b)
        rows.append(
            MetricRow(
                name=name,
                candidate=c,
                baseline=b,
                change="" if d.change is None else f"{d.change:+.4g}",
                worse=d.worse,
            )
        )
    return rows


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_words(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds >= 2 * 3600:
        return f"{round(seconds / 3600)} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min".removesuffix(" 0 min")
    return f"{max(seconds // 60, 1)} min"


class EmlFileBackend(BaseEmailBackend):
    """Writes each mail to its own `.eml` file under EMAIL_FILE_PATH (`EMAIL_URL=file://...`).

    The demo's mailbox: any mail client opens the files. Django's own file backend appends mails
    sent in the same second to one `.log` file.
    """

    def send_messages(self, email_messages) -> int:
        folder = Path(settings.EMAIL_FILE_PATH)
        folder.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
            partial = folder / f".{name}.part"
            partial.write_bytes(message.message().as_bytes())
            partial.rename(folder / name)  # a reader never sees half a mail
        return len(email_messages)


# -- reminders and escalation ------------------------------------------------------------------


def remind_and_escalate(*, now=None) -> dict[str, list[int]]:
    """Records a reminder for pending requests about to expire, and an escalation for those at
    half their lifetime with no vote; each once per request. Their mail follows the event."""
    now = now or timezone.now()
    before = timedelta(seconds=settings.QUORUM_REMINDER_BEFORE)
    pending = TransitionRequest.objects.filter(decision=Decision.PENDING, expires_at__gt=now)
    reminded = Exists(AuditEvent.objects.filter(request=OuterRef("pk"), action="notify.reminder"))
    escalated = Exists(
        AuditEvent.objects.filter(request=OuterRef("pk"), action="notify.escalation")
    )
    to_remind = list(
        pending.filter(expires_at__lte=now + before)
        # A request whose whole life is shorter than the reminder window has just been announced.
        .filter(created_at__lt=F("expires_at") - before)
        .exclude(reminded)
        .values_list("pk", flat=True)
    )
    voted = Exists(Vote.objects.filter(request=OuterRef("pk"), stale=False))
    unvoted = pending.exclude(escalated).exclude(voted)
    to_escalate = [
        pk
        for pk, created, expires in unvoted.values_list("pk", "created_at", "expires_at")
        if created + (expires - created) / 2 <= now
    ]
    return {
        "reminded": [pk for pk in to_remind if _record_once(pk, "notify.reminder", now)],
        "escalated": [pk for pk in to_escalate if _record_once(pk, "notify.escalation", now)],
    }


def _record_once(request_id: int, action: str, now) -> bool:
    with transaction.atomic():
        request = (
            TransitionRequest.objects.select_for_update(of=("self",))
            .select_related("version__model")
            .get(pk=request_id)
        )
        recorded = request.audit_events.filter(action=action).exists()
        if request.decision != Decision.PENDING or recorded:
            return False
        audit.record(
            action,
            actor="system",
            request=request,
            details={
                "expires_at": request.expires_at,
                "seconds_left": int((request.expires_at - now).total_seconds()),
            },
        )
    return True


def periodic() -> dict:
    """Cron job: reminders, escalations, then whatever mail and webhooks are still pending."""
    summary = remind_and_escalate()
    result = {
        "reminded": len(summary["reminded"]),
        "escalated": len(summary["escalated"]),
        "mail_swept": sweep_outbox(),
        "webhooks_swept": webhooks_out.sweep(),
    }
    if any(result.values()):
        logger.info("notifications: %s", result)
    return result
