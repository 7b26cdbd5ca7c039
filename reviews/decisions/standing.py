"""Where a request stands, read from the facts: its badge, who decided it, whether a retry can help.

The stored `decision` changes only under the request's row lock (`deciding.decide`), and one
change waits for a periodic job: the reconciler marks a pending request past `expires_at` as
expired up to QUORUM_RECONCILE_INTERVAL later. Nothing can happen to the request meanwhile (a vote
after the deadline is refused, `voting._check_can_vote`), so everything a person reads (the
page's badge, the inbox, the API's `status`, the CLI) says "expired" at once, while the stored
`decision` (what API clients filter and poll on) keeps its meaning and follows on its own.

A decision names everyone whose vote made it ("approved by alice, bob and carol", the people
`reviews.decisions.counting` counted), not only the last voter. A failed transition offers a retry
only when retrying can change the outcome: not once the version is gone from MLflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.utils import timezone

from ..models import Decision, Execution, RequestKind, TransitionRequest, Vote, VoteChoice
from . import gates
from .counting import Tally

# The `transition.failed` detail that says no retry can help (`reviews.execution.jobs`).
PERMANENT = "permanent"


def is_overdue(request: TransitionRequest, now: datetime | None = None) -> bool:
    """Pending past its deadline: expired in fact, whether or not the reconciler has run yet."""
    return request.decision == Decision.PENDING and request.expires_at <= (now or timezone.now())


def status(request: TransitionRequest, now: datetime | None = None) -> str:
    """One word for where the request stands now: pending, expired, rejected, cancelled, or once
    approved its transition's queued, running, done or failed."""
    return status_of(request.decision, request.execution, request.expires_at, now)


def status_of(
    decision: str, execution: str, expires_at: datetime, now: datetime | None = None
) -> str:
    """`status` from the columns, for lists that read requests as plain rows (the API's)."""
    if decision == Decision.PENDING and expires_at <= (now or timezone.now()):
        return str(Decision.EXPIRED)
    if decision == Decision.APPROVED and execution != Execution.NONE:
        return str(execution)
    return str(decision)


def state_label(request: TransitionRequest, now: datetime | None = None) -> str:
    """The badge's words: the decision, and once approved where the transition stands
    ("approved · running"); "expired" as soon as the deadline passes."""
    if is_overdue(request, now):
        return Decision.EXPIRED.label
    if request.decision == Decision.APPROVED and request.execution != Execution.NONE:
        return f"approved · {request.get_execution_display()}"
    return request.get_decision_display()


def state_class(request: TransitionRequest, now: datetime | None = None) -> str:
    """A CSS class for the badge: the execution once it has ended, else the decision."""
    if is_overdue(request, now):
        return f"state-{Decision.EXPIRED}"
    if request.decision == Decision.APPROVED and request.execution in (
        Execution.FAILED,
        Execution.DONE,
    ):
        return f"state-{request.execution}"
    return f"state-{request.decision}"


# -- who decided -------------------------------------------------------------------------------


def join_names(names: Sequence[str]) -> str:
    """'alice', 'alice and bob', 'alice, bob and carol'."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def deciders(request: TransitionRequest, votes: Iterable[Vote], count: Tally) -> list[str]:
    """The people whose votes decided the request, in the order they voted: for an approval the
    quorum counted (`reviews.decisions.counting`), for a rejection those whose rejections stand, for
    a cancellation whoever cancelled. Empty when no person decided (gates, expiry, MLflow)."""
    if request.decision == Decision.APPROVED:
        return list(count.approvers)
    decided_by = request.decided_by if request.decided_by_id is not None else None
    if decided_by is None:
        return []
    if request.decision == Decision.REJECTED:
        rejecting = [
            v.user.get_username() for v in votes if v.decision == VoteChoice.REJECT and not v.stale
        ]
        return rejecting or [decided_by.get_username()]
    if request.decision == Decision.CANCELLED:
        return [decided_by.get_username()]
    return []


def decided_by_words(request: TransitionRequest, votes: Iterable[Vote], count: Tally) -> str:
    """'by alice, bob and carol', 'by break glass (dave); gates skipped', 'by the policy's
    gates', 'by the policy' (approved at once by a rule, not a gate), or '' when nobody
    decided it."""
    names = deciders(request, votes, count)
    if names:
        return f"by {join_names(names)}"
    if request.kind == RequestKind.BREAK_GLASS and request.decision == Decision.APPROVED:
        # The person who broke glass is who requested and decided the move.
        return f"by break glass ({request.requester.get_username()}); gates skipped"
    if request.decision == Decision.APPROVED and not gates.auto_approves_stored(
        request.gate_results
    ):
        # A revert the policy orders for an unratified move: no gate approved it.
        return "by the policy"
    if request.decision in (Decision.APPROVED, Decision.REJECTED):
        return "by the policy's gates"
    return ""


# -- retrying -----------------------------------------------------------------------------------


def retry_blocker(request: TransitionRequest) -> str:
    """Why retrying this failed transition cannot succeed, or "" when it may (or it has not
    failed).

    The version is gone from MLflow (the job found it missing and said so in its
    `transition.failed` event, or the mirror has it deleted): MLflow never reuses a version
    number, so no retry can bring it back. One query, and only for a failed request.
    """
    if request.decision != Decision.APPROVED or request.execution != Execution.FAILED:
        return ""
    version = request.version
    last_failure = (
        request.audit_events.filter(action="transition.failed").order_by("-sequence").first()
    )
    if version.deleted or (last_failure and last_failure.details.get(PERMANENT)):
        return (
            f"Version {version.version} no longer exists in MLflow: retrying cannot bring it "
            "back. Register the model again and request the new version."
        )
    return ""
