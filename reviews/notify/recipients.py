"""Which audit event makes which kind of mail, and who gets it (the table in `reviews.notify`)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from ..decisions.voting import required_groups
from ..models import NotificationKind, NotificationPreference, TransitionRequest, Vote

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
    "out_of_band.reverted": Kind.REVERTED,
    "out_of_band.revert_failed": Kind.REVERT_FAILED,
    "registry.sync_failing": Kind.SYNC_FAILING,
    "break_glass.used": Kind.BREAK_GLASS,
    "break_glass.unratified": Kind.UNRATIFIED,
    "break_glass.unratifiable": Kind.UNRATIFIABLE,
    "comment.posted": Kind.COMMENT,
    "votes.stale": Kind.REREVIEW,
}
# Mail about something a person wrote: its author is not told about it.
AUTHORED = {Kind.COMMENT}
# Mail about the registry rather than a request: it goes to staff.
ABOUT_THE_REGISTRY = {Kind.OUT_OF_BAND, Kind.REVERTED, Kind.REVERT_FAILED, Kind.SYNC_FAILING}
# Mail that asks for a vote: pointless once the request is decided.
ASKS_FOR_A_VOTE = {Kind.REVIEW_NEEDED, Kind.REMINDER, Kind.ESCALATION}


def recipients(kind: str, request: TransitionRequest | None) -> QuerySet:
    """The users who get `kind` of mail about `request`: active, with an address."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    staff = Q(is_staff=True)
    if kind in ABOUT_THE_REGISTRY or kind in (Kind.ESCALATION, Kind.UNRATIFIED, Kind.UNRATIFIABLE):
        chosen = users.filter(staff)
    elif request is None:
        raise ValueError(f"{kind!r} mail is about a request, and none was given")
    elif kind in (Kind.REVIEW_NEEDED, Kind.BREAK_GLASS):
        # A break-glass move tells every member of the required groups at once.
        chosen = approvers(request, users)
    elif kind == Kind.REMINDER:
        chosen = (
            approvers(request, users)
            .exclude(pk__in=current_voters(request))
            .exclude(notification_preference__reminders=False)
        )
    elif kind == Kind.DECIDED:
        chosen = users.filter(Q(pk=request.requester_id) | Q(votes__request=request))
    elif kind == Kind.COMMENT:
        # The conversation: the requester, whoever voted, and whoever may still vote.
        voted = Q(votes__request=request)
        chosen = users.filter(
            Q(pk=request.requester_id) | voted | Q(pk__in=approvers(request, users))
        )
    elif kind == Kind.REREVIEW:
        # Whose approval went stale and who has not voted again since: asked to review again.
        chosen = users.filter(votes__request=request, votes__stale=True).exclude(
            pk__in=current_voters(request)
        )
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
