"""A request's activity timeline, read from the audit log: the log is the record, this is a view.

Everything that happened to the request (creation with its gate results, votes, comments,
dismissed approvals, re-evaluations after the baseline moved, the decision, each transition
attempt and its outcome, the approval proof, a break-glass move and its ratification) is an audit
event naming the request; a change made in MLflow outside Quorum to the same model and target is
an event naming the model. One query reads both, however long the history. Every event the code
records has words here: none reads as its raw name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q

from registry.models import ChangeKind

from ..decisions import gates
from ..models import AuditEvent, RequestKind, TransitionRequest

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
    # The names revocation failures were first recorded under: the log keeps them.
    "attestation.revocation_attempt_failed": "Revoking a proof failed; it will be retried",
    "attestation.revocation_failed": "Revoking a proof failed",
}
# A break-glass move's own events (`reviews.emergency.break_glass`, `reviews.decisions.unratified`).
BREAK_GLASS = ("break_glass.used", "break_glass.unratifiable", "break_glass.unratified")
UNRATIFIED_RULES = {
    "alert": "staff are alerted",
    "revert": "staff are alerted and the previous holder is put back",
}
# What the periodic job recorded on a pending request (`reviews.notify.reminders`).
NUDGES = {
    "notify.reminder": "Reminder mailed to the approvers who have not voted: it expires soon",
    "notify.escalation": "Escalated to staff: half its time passed with no vote",
}
# Events about policies, people, the outbox, the sync or a model as a whole: recorded without a
# request, so no request's timeline shows them today; named all the same, so that no event Quorum
# records ever reads as its raw name (tests/conversation/test_timeline.py checks every one the
# code records).
ELSEWHERE = {
    "policy.load": "Policies loaded",
    "policy.create": "Policy created",
    "policy.edit": "Policy edited",
    "policy.delete": "Policy deleted",
    "group.create": "Group created",
    "group.edit": "Group edited",
    "group.delete": "Group deleted",
    "group.members": "Group members changed",
    "user.create": "Account created at its first sign-in",
    "user.refused": "Sign-in refused",
    "user.staff": "Staff status set by the identity provider",
    "api_token.created": "API token created",
    "api_token.revoked": "API token revoked",
    "outbox.send_again": "Notifications queued to be sent again",
    "registry.sync_failing": "The registry sync keeps failing",
    "out_of_band.reverted": "Change made in MLflow outside Quorum reverted",
    "out_of_band.revert_skipped": "Change made in MLflow outside Quorum left as it was",
    "out_of_band.revert_failed": "Reverting a change made in MLflow outside Quorum failed",
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


def timeline(request: TransitionRequest, events: Iterable[AuditEvent] | None = None) -> list[Entry]:
    """What happened to `request`, oldest first. `events`: `events_for(request)`, when the caller
    read them already."""
    target = request.parsed_target
    entries = []
    for event in events_for(request) if events is None else events:
        if event.action == OUT_OF_BAND and not _touches(event.details, target):
            continue
        entries.append(describe(event, request))
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


def describe(event: AuditEvent, request: TransitionRequest) -> Entry:
    """The timeline's words for one audit event of `request`'s timeline."""
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
        return _created(entry, details, request)
    if action in BREAK_GLASS:
        return _break_glass(entry, action, details)
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
            items=gates.result_lines(details.get("gates") or []),
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
    if action in NUDGES:
        return entry(kind="nudge", title=NUDGES[action])
    if action in ELSEWHERE:
        return entry(kind="other", title=ELSEWHERE[action])
    # An event recorded by a newer Quorum than this one: its name, but never as the only word.
    return entry(kind="other", title=f"Recorded: {action}")


def _created(entry: Callable[..., Entry], details: dict, request: TransitionRequest) -> Entry:
    """A request opened: by its requester, or, for a ratification, by Quorum for the person who
    broke glass (whom the page's header names)."""
    kind = details.get("kind")
    baseline = details.get("baseline")
    against = f" against v{baseline}" if baseline is not None else " with no baseline"
    policy = f" (policy {details.get('policy')})"
    items = gates.result_lines(details.get("gates") or [])
    if kind == RequestKind.RATIFICATION:
        breaker = request.requester.get_username()
        return entry(
            kind="created",
            title=f"Ratification opened for {breaker}'s break-glass move "
            f"#{details.get('ratifies')}{policy}",
            text=details.get("comment", ""),
            items=items,
        )
    if kind == RequestKind.BREAK_GLASS:
        held = f" (held by v{baseline})" if baseline is not None else ""
        title = f"Broke glass to move it to {details.get('target', '')}{held}{policy}"
    else:
        title = f"Requested {details.get('target', '')}{against}{policy}"
    answer = details.get("rejection_answer")
    return entry(
        kind="created",
        title=title,
        text=details.get("comment", ""),
        items=([f"Answer to the earlier rejection: {answer}"] if answer else []) + items,
    )


def _break_glass(entry: Callable[..., Entry], action: str, details: dict) -> Entry:
    """What happened around a break-glass move (`reviews.emergency`): the move itself, a
    ratification that cannot pass without the breaker, and a move left unratified."""
    if action == "break_glass.used":
        groups = " and ".join(details.get("groups") or [])
        rule = details.get("on_unratified")
        return entry(
            kind="break-glass",
            title="Approved at once by break glass, without a quorum"
            + (f" (a member of {groups})" if groups else "")
            + "; gates skipped: break glass",
            text=details.get("reason", ""),
            items=[
                f"The policy's quorum must ratify it within {details.get('ratify_within')}; "
                f"if it does not, {UNRATIFIED_RULES.get(str(rule), rule)}."
            ],
        )
    if action == "break_glass.unratifiable":
        return entry(
            kind="break-glass",
            title="Its ratification cannot pass without the person who broke glass",
            text=" ".join(str(details.get(key) or "") for key in ("problem", "fix")).strip(),
        )
    # break_glass.unratified
    ratification = details.get("ratification")
    reverted, revert = details.get("reverted_to"), details.get("revert_request")
    outcome = (
        f"v{reverted} put back by #{revert}"
        if reverted is not None
        else "staff alerted; nothing put back"
    )
    return entry(
        kind="break-glass transition-failed",
        title=f"Not ratified: ratification #{ratification} was {details.get('decision')}; "
        + outcome,
        text=details.get("reason", ""),
    )
