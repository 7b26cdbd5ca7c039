"""Votes: who may vote on a request, casting one, and approvals that stop counting.

A vote is cast under the request's row lock, from the eligibility checks to the decision it may
settle (`reviews.decisions.deciding.decide`), so concurrent final votes produce exactly one
approval and one transition job. Refusals raise `reviews.errors.QuorumError` subclasses whose
messages a user can act on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from ..audit import chain
from ..errors import (
    AlreadyVoted,
    CommentRequired,
    InvalidVote,
    NotEligible,
    RequestClosed,
    SelfApprovalNotAllowed,
)
from ..models import Decision, TransitionRequest, Vote, VoteChoice
from . import counting, escalation, pins
from .counting import approvals_mark_stale
from .deciding import decide, locked_or_refuse, stale_page_refusal

__all__ = ["approvals_mark_stale", "vote_cast", "vote_refusal"]


def required_groups(request: TransitionRequest) -> list[str]:
    return [r["group"] for r in request.policy_snapshot.get("require", [])]


def eligible_groups(
    request: TransitionRequest, user: User, *, groups: Collection[str] | None = None
) -> list[str]:
    """The required groups `user` belongs to now, in the policy's order. `groups`: all of the
    user's group names, when the caller read them already."""
    required = required_groups(request)
    if groups is None:
        groups = set(user.groups.filter(name__in=required).values_list("name", flat=True))
    return [g for g in required if g in groups]


def vote_refusal(
    request: TransitionRequest,
    user: User,
    *,
    votes: Iterable[Vote] | None = None,
    groups: Collection[str] | None = None,
) -> str | None:
    """Why `user` cannot vote on `request` now, in words for the page; None when they can.
    `votes` (all of the request's) and `groups` (all of the user's names): when the page has
    read them already, as it did this response."""
    if votes is None:
        existing = request.votes.filter(user=user, stale=False).first()
    else:
        existing = next((v for v in votes if v.user_id == user.pk and not v.stale), None)
    try:
        _check_can_vote(request, user, existing, groups=groups)
    except (RequestClosed, NotEligible, AlreadyVoted) as refusal:
        return str(refusal)
    return None


def _check_can_vote(
    request: TransitionRequest,
    user,
    existing_vote: Vote | None,
    *,
    groups: Collection[str] | None = None,
) -> list[str]:
    if request.decision != Decision.PENDING:
        raise RequestClosed(f"This request is already {request.decision}.")
    if request.expires_at <= timezone.now():
        raise RequestClosed(f"This request expired at {request.expires_at:%Y-%m-%d %H:%M} UTC.")
    if request.requester_id == user.pk and not request.policy_snapshot.get("allow_self_approval"):
        raise SelfApprovalNotAllowed(
            "You requested this; this policy does not allow self-approval."
        )
    eligible = eligible_groups(request, user, groups=groups)
    if not eligible:
        raise NotEligible(f"You are not in {' or '.join(required_groups(request))}.")
    if existing_vote is not None:
        raise AlreadyVoted(f"You already voted ({existing_vote.decision}) on this request.")
    return eligible


@transaction.atomic
@chain.deferred_appends()
def vote_cast(
    *,
    request_id: int,
    user: User,
    decision: str,
    comment: str = "",
    seen_decision: str | None = None,
) -> Vote:
    """Records one user's approval or rejection and decides the request when that settles it.

    The request row stays locked from the checks to the decision, so concurrent final votes
    produce exactly one approval and one transition job.
    """
    if decision not in VoteChoice.values:
        raise InvalidVote(f"A vote is approve or reject, not {decision!r}.")
    comment = comment.strip()
    if decision == VoteChoice.REJECT and not comment:
        raise CommentRequired("Say why you reject: the requester needs it to fix the model.")
    request = locked_or_refuse(request_id)
    stale_page_refusal(request, seen_decision)
    # A stale approval (the evidence changed since) stays in the history and does not stop its
    # voter from voting again: only a current vote does.
    groups = _check_can_vote(request, user, request.votes.filter(user=user, stale=False).first())
    vote = Vote.objects.create(
        request=request,
        user=user,
        decision=decision,
        comment=comment,
        groups=groups,
        seen_metrics={"candidate": request.candidate_metrics, "baseline": request.baseline_metrics},
        seen_evidence=escalation.seen_evidence(request),
        seen_digest=request.content_digest,
    )
    chain.record(
        "vote.cast",
        actor=user,
        request=request,
        details={
            "decision": decision,
            "comment": comment,
            "groups": groups,
            "content_digest": request.content_digest,
        },
    )
    votes = list(request.votes.select_related("user"))
    rejections = [v for v in votes if v.decision == VoteChoice.REJECT and not v.stale]
    if len(rejections) >= request.policy_snapshot.get("rejections_needed", 1):
        decide(request, Decision.REJECTED, actor=user, reason=comment)
    elif (count := counting.tally(request, votes)).met and not pins.unpinned(request):
        # Without a pinned digest the quorum waits: it is decided when the digest is pinned
        # (`pins.on_content_stored`), by the approvals confirmed then.
        decide(request, Decision.APPROVED, actor=user, reason=count.reason())
    return vote
