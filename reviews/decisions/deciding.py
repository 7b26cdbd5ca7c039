"""Deciding a request: the one function that moves a pending request to its decision, and the
actions that lead to it outside a vote (cancellation, expiry), or follow it (an admin's retry).

A decision changes only under the request's row lock and is taken once; an approval queues the
transition job after commit (`transaction.on_commit`), and every change appends its audit event
in the same transaction. The requests people act on are read here too: under their row lock, and
refused when the page they acted from showed them in another state.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from ..audit import chain
from ..errors import (
    InvalidReason,
    NotAllowed,
    PageStale,
    RequestClosed,
    RequestNotFound,
    WrongExecutionState,
)
from ..models import COMMENT_MAX, Decision, Execution, RequestKind, TransitionRequest
from . import handoff, standing, unratified

# -- the request a person acts on -------------------------------------------------------------


def locked_or_refuse(request_id: int) -> TransitionRequest:
    """The request a person named, under its row lock; `RequestNotFound` when there is none."""
    try:
        return TransitionRequest.objects.locked(request_id)
    except TransitionRequest.DoesNotExist:
        raise RequestNotFound(f"There is no request #{request_id}.") from None


def stale_page_refusal(request: TransitionRequest, seen_decision: str | None) -> None:
    """Refuses a form sent from a page that showed `request` in another decision state.

    A reviewer who typed in one tab while the request was decided in another must see that
    first: their text is kept by the page, not posted into a conversation that moved on.
    """
    if seen_decision and request.decision != seen_decision:
        raise PageStale(
            f"While this page was open, request #{request.pk} became {request.decision} "
            f"(the page showed it {seen_decision}). Nothing was posted: read what changed, "
            "then send your text again."
        )


# -- decisions --------------------------------------------------------------------------------


def decide(request: TransitionRequest, decision: str, *, actor, reason: str) -> None:
    """Moves a locked pending request to its decision; an approval queues the transition job.

    A decision is taken once: callers check under the row lock that the request is pending, and
    a request that is not (a caller that skipped the check) is refused, not decided twice.
    """
    if request.decision != Decision.PENDING:
        raise RequestClosed(
            f"Request #{request.pk} is already {request.decision}; it cannot also be {decision}."
        )
    request.decision = decision
    request.decided_at = timezone.now()
    request.decided_by = actor if isinstance(actor, User) else None
    request.decision_reason = reason
    fields = ["decision", "decided_at", "decided_by", "decision_reason"]
    if decision == Decision.APPROVED:
        request.execution = Execution.QUEUED
        fields.append("execution")
    request.save(update_fields=fields)
    chain.record(f"request.{decision}", actor=actor, request=request, details={"reason": reason})
    if request.kind == RequestKind.RATIFICATION and decision != Decision.APPROVED:
        unratified.on_ratification_decided(request, decision)
    if decision == Decision.APPROVED:
        transaction.on_commit(lambda: handoff.enqueue_transition(request.pk))
    else:
        # Closed: the version's pin goes once no other request of it is open. An approved
        # request stays open until its move is done; the sync after the move unpins it.
        handoff.guard_refresh_soon()


# -- cancellation, expiry, retry ---------------------------------------------------------------


def cancel_refusal(request: TransitionRequest, user: User) -> str | None:
    """Why `user` may not cancel `request` (whatever its state), or None when they may."""
    if user.is_staff:
        return None
    if request.kind == RequestKind.RATIFICATION:
        # Whoever broke glass is its requester: withdrawing it would end the review of their
        # own move. Cancelled, it is unratified like a rejection.
        return (
            "Only an admin can cancel a ratification; cancelled, the break-glass move it "
            "ratifies is unratified."
        )
    if request.requester_id != user.pk:
        return "Only the requester or an admin can cancel this request."
    return None


@transaction.atomic
@chain.deferred_appends()
def request_cancel(*, request_id: int, user: User, reason: str = "") -> TransitionRequest:
    """The requester (or staff; only staff for a ratification) withdraws a pending request,
    saying why if they like: the reason goes in the decision, so the timeline and the mails
    show it."""
    reason = " ".join(reason.split())
    if len(reason) > COMMENT_MAX:
        raise InvalidReason(f"A reason is at most {COMMENT_MAX:,} characters.")
    request = locked_or_refuse(request_id)
    if refusal := cancel_refusal(request, user):
        raise NotAllowed(refusal)
    if request.decision != Decision.PENDING:
        raise RequestClosed(f"Request #{request.pk} is already {request.decision}.")
    said = "Cancelled by " + user.get_username()
    decide(request, Decision.CANCELLED, actor=user, reason=f"{said}: {reason}" if reason else said)
    return request


def requests_expire_overdue(*, now=None) -> list[int]:
    """Expires every pending request past its deadline; returns their ids. Touches no MLflow."""
    now = now or timezone.now()
    expired = []
    overdue = TransitionRequest.objects.filter(decision=Decision.PENDING, expires_at__lt=now)
    for request_id in overdue.values_list("pk", flat=True):
        with transaction.atomic(), chain.deferred_appends():
            try:
                request = TransitionRequest.objects.locked(request_id)
            except TransitionRequest.DoesNotExist:  # deleted since the query: nothing to expire
                continue
            if request.decision == Decision.PENDING and request.expires_at < now:
                decide(
                    request,
                    Decision.EXPIRED,
                    actor="system",
                    reason=f"No decision before {request.expires_at:%Y-%m-%d %H:%M} UTC",
                )
                expired.append(request_id)
    return expired


@transaction.atomic
@chain.deferred_appends()
def transition_retry(*, request_id: int, user: User) -> TransitionRequest:
    """An admin re-runs a failed transition."""
    if not user.is_staff:
        raise NotAllowed("Only an admin can retry a transition.")
    request = locked_or_refuse(request_id)
    if request.decision != Decision.APPROVED or request.execution != Execution.FAILED:
        raise WrongExecutionState(
            f"Request #{request.pk} has no failed transition to retry "
            f"(decision {request.decision}, execution {request.get_execution_display()})."
        )
    if blocker := standing.retry_blocker(request):
        raise WrongExecutionState(blocker)
    request.execution = Execution.QUEUED
    request.execution_requeues = 0  # the reconciler's allowance starts again
    request.save(update_fields=["execution", "execution_requeues"])
    chain.record(
        "transition.retry",
        actor=user,
        request=request,
        details={"previous_error": request.execution_error},
    )
    transaction.on_commit(lambda: handoff.enqueue_transition(request.pk, replace=True))
    return request
