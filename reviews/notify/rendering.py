"""What a mail says: its subject, plain text and HTML, from the audit event it is about.

Templates are `quorum/templates/emails/<kind>.txt` and `.html`. MLflow names and text are untrusted:
the HTML template escapes them and a subject is kept to one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse

from registry import metrics, names

from ..decisions import gates, standing
from ..decisions.counting import tally
from ..links import absolute, request_url
from ..models import AuditEvent, GuardProbe, TransitionRequest
from .recipients import Kind

# Metrics a mail shows, main metrics first.
MAIL_METRICS = 6


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
        "body": details.get("body", ""),
    }
    if request is not None:
        votes = list(request.votes.select_related("user"))
        count = tally(request, votes)
        context.update(
            target=request.target,
            link=request_url(request.pk),
            gates=gates.with_verdicts(request.gate_results),
            metrics=metric_rows(request),
            baseline_version=request.baseline.version if request.baseline is not None else None,
            progress=count.progress,
            votes=votes,
            decision=request.get_decision_display(),
            # "by alice, bob and carol": the quorum, not only the last voter.
            decided_by=standing.decided_by_words(request, votes, count),
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
        # Whether this could have been refused: a registry without the guard lets anyone with
        # EDIT move protected targets, and the mail says so.
        context["guard_probe"] = GuardProbe.latest()
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
    elif kind == Kind.BREAK_GLASS:
        text = f"Break glass: {what} moved to {request.target} by {event.actor}"
    elif kind == Kind.UNRATIFIED:
        text = f"Break glass unratified: {what_to} ({context['details'].get('decision')})"
    elif kind == Kind.UNRATIFIABLE:
        text = f"Break glass: the ratification of {what_to} cannot pass as the groups stand"
    elif kind == Kind.COMMENT:
        text = f"{event.actor} commented on {what_to}"
    elif kind == Kind.REREVIEW:
        text = f"Your approval of #{request.pk} {what_to} was dismissed: please review again"
    elif kind == Kind.REVERTED:
        text = f"Out-of-band move of {names.as_text(event.model_name)} reverted in MLflow"
    elif kind == Kind.REVERT_FAILED:
        error = (context["error"] or "unknown error").strip().splitlines()[0]
        text = (
            f"Could not revert an out-of-band move of {names.as_text(event.model_name)}: "
            f"{shorten(error, 120)}"
        )
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
                change="" if d.change is None else metrics.format_change(d.change),
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
