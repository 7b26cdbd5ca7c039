"""A request's activity timeline, read from the audit log: the log is the record, this is a view.

Everything that happened to the request (creation with its gate results, votes, comments,
dismissed approvals, re-evaluations after the baseline moved, the decision, each transition
attempt and its outcome, the approval proof) is an audit event naming the request; a change made
in MLflow outside Quorum to the same model and target is an event naming the model. One query
reads both, however long the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q

from registry.models import ChangeKind

from ..models import AuditEvent, TransitionRequest

OUT_OF_BAND = "registry.out_of_band"
DECISIONS = {
    "request.approved": "approved",
    "request.rejected": "rejected",
    "request.cancelled": "cancelled",
    "request.expired": "expired",
}
TRANSITIONS = {
    "transition.started": "Transition attempt started",
    "transition.done": "Transition done in MLflow",
    "transition.attempt_failed": "Transition attempt failed; it will be retried",
    "transition.failed": "Transition failed",
    "transition.retry": "Transition retried by an admin",
    "transition.retry_enqueued": "Transition queued again",
    "transition.requeued": "Lost transition job queued again",
    "attestation.written": "Signed approval proof written",
    "attestation.attempt_failed": "Writing the approval proof failed; it will be retried",
    "attestation.failed": "Writing the approval proof failed",
    # The proofs of the versions this request's move took out of a target.
    "proof.revoked": "Proof of a version that left the target revoked",
    "proof.revocation_attempt_failed": "Revoking a proof failed; it will be retried",
    "proof.revocation_failed": "Revoking a proof failed",
}


@dataclass(frozen=True)
class Entry:
    """One line of the timeline. `kind` names its look (and the API's `kind`)."""

    sequence: int
    at: datetime
    actor: str
    action: str
    kind: str
    title: str
    text: str = ""
    items: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "sequence": self.sequence,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "kind": self.kind,
            "title": self.title,
            "text": self.text,
            "items": self.items,
        }


def events_for(request: TransitionRequest):
    """The audit events of `request`'s timeline, oldest first, in one query."""
    model_name = request.version.model.name
    about_target = Q(action=OUT_OF_BAND, model_name=model_name, created_at__gte=request.created_at)
    return AuditEvent.objects.filter(Q(request_id=request.pk) | about_target).order_by("sequence")


def timeline(request: TransitionRequest) -> list[Entry]:
    """What happened to `request`, oldest first."""
    target = request.parsed_target
    entries = []
    for event in events_for(request):
        if event.action == OUT_OF_BAND and not _touches(event.details, target):
            continue
        entries.append(describe(event))
    return entries


def _touches(details: dict, target) -> bool:
    """Whether an out-of-band change moved the request's target (to or away from a version)."""
    change, old, new = details.get("change"), details.get("old"), details.get("new")
    if target.is_alias:
        return change in (ChangeKind.ALIAS_ADDED, ChangeKind.ALIAS_REMOVED) and target.alias in (
            old,
            new,
        )
    return change == ChangeKind.STAGE_CHANGED and target.stage in (old, new)


def _gate_lines(gates: list[dict]) -> list[str]:
    return [
        f"{'✓' if g.get('passed') else '✗'} {g.get('reason') or g.get('metric', '')}"
        for g in gates or []
    ]


def describe(event: AuditEvent) -> Entry:
    """The timeline's words for one audit event."""
    details = event.details or {}
    action = event.action

    def entry(kind: str, title: str, text: str = "", items: list[str] | None = None) -> Entry:
        return Entry(
            sequence=event.sequence,
            at=event.created_at,
            actor=event.actor,
            action=action,
            kind=kind,
            title=title,
            text=text or "",
            items=items or [],
        )

    if action == "request.created":
        baseline = details.get("baseline")
        against = f" against v{baseline}" if baseline is not None else " with no baseline"
        return entry(
            kind="created",
            title=f"Requested {details.get('target', '')}{against}"
            f" (policy {details.get('policy')})",
            text=details.get("comment", ""),
            items=(
                [f"Answer to the earlier rejection: {details['rejection_answer']}"]
                if details.get("rejection_answer")
                else []
            )
            + _gate_lines(details.get("gates", [])),
        )
    if action == "vote.cast":
        verb = "approved" if details.get("decision") == "approve" else "rejected"
        groups = details.get("groups") or []
        return entry(
            kind=f"vote vote-{details.get('decision')}",
            title=f"{verb.capitalize()}" + (f" (for {', '.join(groups)})" if groups else ""),
            text=details.get("comment", ""),
        )
    if action == "comment.posted":
        return entry(kind="comment", title="Commented", text=details.get("body", ""))
    if action == "votes.stale":
        voters = ", ".join(details.get("voters", []))
        return entry(
            kind="stale",
            title=f"Approvals dismissed: {voters}",
            text=details.get("reason", ""),
        )
    if action == "request.content_pinned":
        digest = details.get("digest") or ""
        return entry(
            kind="reevaluated",
            title=f"Content pinned: sha256 {digest[:12]}…" if digest else "Content unpinned",
            text=details.get("reason", ""),
        )
    if action == "request.reevaluated":
        baseline = details.get("baseline")
        now = f"v{baseline}" if baseline is not None else "nothing"
        return entry(
            kind="reevaluated",
            title=f"Gates re-evaluated; the baseline is now {now}",
            text=details.get("reason", ""),
            items=_gate_lines(details.get("gates", [])),
        )
    if action in DECISIONS:
        return entry(
            kind=f"decision decision-{DECISIONS[action]}",
            title=f"Request {DECISIONS[action]}",
            text=details.get("reason", ""),
        )
    if action in TRANSITIONS:
        failed = "failed" in action
        attempt = details.get("attempt")
        return entry(
            kind="transition transition-failed" if failed else "transition",
            title=TRANSITIONS[action] + (f" (attempt {attempt})" if attempt else ""),
            text=details.get("error", "") or details.get("previous_error", ""),
        )
    if action == OUT_OF_BAND:
        change, old, new = details.get("change"), details.get("old"), details.get("new")
        version = f"v{event.version}" if event.version is not None else "a version"
        if change == ChangeKind.ALIAS_ADDED:
            words = f"{version} got alias @{new}"
        elif change == ChangeKind.ALIAS_REMOVED:
            words = f"{version} lost alias @{old}"
        else:
            words = f"{version} moved from {old} to {new}"
        return entry(kind="out-of-band", title=f"Changed in MLflow outside Quorum: {words}")
    return entry(kind="other", title=action)
