"""What awaits whom: the queries behind the inbox and the navigation's count, and the one-line
summaries a request's row shows (per-group progress, gates, state).

A request awaits a user when they could vote on it now: pending and not expired, the policy snapshot
requires a group they are in, they have no current vote on it (a stale approval is not one), and
they did not request it (unless the policy allows self-approval). That is
`reviews.decisions.voting._check_can_vote` stated as a query, so the inbox never lists a request
whose page would then refuse the vote.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, Prefetch, QuerySet, prefetch_related_objects
from django.http import HttpRequest
from django.utils import timezone

from ..decisions import counting, gates, standing
from ..models import Decision, TransitionRequest, Vote


def group_names(request: HttpRequest) -> set[str]:
    """The signed-in user's group names, read once per response: the navigation's count, the
    inbox and the request page's vote form read the same answer."""
    if not request.user.is_authenticated:
        return set()
    if not hasattr(request, "_group_names"):
        names = set(request.user.groups.values_list("name", flat=True))
        request._group_names = names  # type: ignore[attr-defined]
    return request._group_names  # type: ignore[attr-defined]


def awaiting_ids(
    user: User,
    *,
    within: QuerySet[TransitionRequest] | None = None,
    groups: set[str] | None = None,
) -> list[int]:
    """The ids of the requests awaiting `user`'s vote, oldest first (`within`: among those, e.g.
    the inbox's filters applied; `groups`: the user's group names, when read already). Two
    queries whatever the number of requests: the snapshot's groups are checked here, where
    every database can. Only the snapshot's `require` is read: the whole snapshot of thousands
    of pending requests would be most of the page's time."""
    if groups is None:
        groups = set(user.groups.values_list("name", flat=True))
    if not groups:
        return []
    among = within if within is not None else TransitionRequest.objects.all()
    candidates = (
        among.filter(decision=Decision.PENDING, expires_at__gt=timezone.now())
        # A stale approval is not a vote any more: its voter is asked again.
        .filter(~Exists(Vote.objects.filter(request=OuterRef("pk"), user=user, stale=False)))
        .order_by("created_at", "id")
        .values_list(
            "pk",
            "requester_id",
            "policy_snapshot__require",
            "policy_snapshot__allow_self_approval",
        )
    )
    return [
        pk
        for pk, requester_id, require, self_approval in candidates
        if groups.intersection(r["group"] for r in require or [])
        and (requester_id != user.pk or self_approval)
    ]


def awaiting_for(request: HttpRequest) -> list[int]:
    """`awaiting_ids` of the signed-in user, computed once per response: the navigation's count
    and the inbox's list read the same answer."""
    if not request.user.is_authenticated:
        return []
    if not hasattr(request, "_awaiting_ids"):
        ids = awaiting_ids(request.user, groups=group_names(request))
        request._awaiting_ids = ids  # type: ignore[attr-defined]
    return request._awaiting_ids  # type: ignore[attr-defined]


# What a request's row shows beside the request: its version's model, its requester, its votes.
ROW_RELATED = ("version__model", "requester")


def _row_votes() -> Prefetch:
    return Prefetch("votes", queryset=Vote.objects.select_related("user"))


def with_rows(requests: QuerySet[TransitionRequest]) -> QuerySet[TransitionRequest]:
    """What a request's row shows, loaded in a fixed number of queries for any page size."""
    return requests.select_related(*ROW_RELATED).prefetch_related(_row_votes())


def rows_of(*lists: QuerySet[TransitionRequest]) -> list[list[TransitionRequest]]:
    """Several lists of rows, each loaded as `with_rows` loads them, with the votes of all of
    them in one query: one query per list and one more, not two per list."""
    loaded = [list(requests.select_related(*ROW_RELATED)) for requests in lists]
    prefetch_related_objects([row for rows in loaded for row in rows], _row_votes())
    return loaded


@dataclass(frozen=True)
class GateSummary:
    total: int
    # Required gates that fail: only those count against a request.
    failed: int
    # Auto-approve gates that did not fire: neutral, people sign off instead.
    needs_sign_off: int = 0

    def __str__(self) -> str:
        if not self.total:
            return "no gates"
        if self.failed:
            return f"{self.failed} of {self.total} gates failed"
        if self.needs_sign_off:
            return "not auto-approved: needs sign-off"
        return f"{self.total} gate{'s' if self.total != 1 else ''} passed"


def gate_summary(request: TransitionRequest) -> GateSummary:
    verdicts = [r["verdict"] for r in gates.with_verdicts(request.gate_results)]
    return GateSummary(
        total=len(verdicts),
        failed=verdicts.count(gates.Verdict.FAILED),
        needs_sign_off=verdicts.count(gates.Verdict.NEEDS_SIGN_OFF),
    )


def decorate(requests) -> list[TransitionRequest]:
    """Attaches `progress`, `gates` and `state` to requests loaded with `with_rows` (or
    `rows_of`)."""
    rows = list(requests)
    for request in rows:
        request.progress = counting.progress(request, list(request.votes.all()))
        request.gates = gate_summary(request)
        request.state = standing.state_label(request)
        request.state_class = standing.state_class(request)
    return rows


def mark_rereviews(rows: list[TransitionRequest], user: User) -> list[TransitionRequest]:
    """Sets `rereview` on rows loaded with `with_rows` (or `rows_of`): the reason `user`'s
    approval was dismissed when it was (the evidence changed and they are asked again), else "".
    No query: the votes are prefetched."""
    for request in rows:
        dismissed = [v for v in request.votes.all() if v.user_id == user.pk and v.stale]
        # Read by the inbox table beside the row's own fields.
        request.rereview = dismissed[-1].stale_reason if dismissed else ""  # type: ignore[attr-defined]
    return rows
