"""Reviewer analytics over the last 30 or 90 days: how long reviews take, where requests wait,
the reminders and escalations sent, and the rejections, per policy and per approver group.

What is counted (the staff page and its CSV say the same):

- The window: requests opened in the last `days` days. Break-glass moves are left out: they are
  made at once, and nobody reviews them first.
- Time to first review: from a request's opening to its first vote (approval or rejection; an
  approval that later went stale still was a review). Per group: to the first vote of someone in
  the group (a vote records the required groups its voter was in).
- Time to quorum: from opening to approval, for requests approved through their reviewers'
  approvals (a gate's automatic approval had no review). Per group: to the group's last needed
  sign-off, the approvals counted for it as `reviews.decisions.counting` assigns them.
- The bottleneck: for each such approved request, the group whose last needed sign-off came last;
  for each request awaiting a decision now (opened whenever), the groups still short.
- Open requests by age: every request awaiting a decision now, by how long it has been open.
- Per policy: requests opened, approved, rejected (and of those, by a required gate) in the
  window, and the reminders and escalations the audit log records in it.

Where the percentiles (p50, p90) are computed: per policy, in PostgreSQL with `percentile_cont`
(one grouped query); on any other database, in Python by `percentile` (the same interpolation
between closest ranks) over the rows already loaded. Per group always in Python: a vote's groups
are a JSON list and the last needed sign-off is the counting's assignment, which SQL does not do.
Those rows are one per request in the window or awaiting a decision and one per vote on them,
never the audit log, whose reminders and escalations are counted in the database.

The queries are a fixed number, whatever the size of the history: the requests, their votes,
the policy percentiles (PostgreSQL only), and the audit log's counts.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    Subquery,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Extract
from django.utils import timezone

from ..decisions.counting import assign
from ..models import AuditEvent, Decision, RequestKind, TransitionRequest, Vote, VoteChoice

WINDOWS = (30, 90)
DEFAULT_WINDOW = 30
FRACTIONS = (0.5, 0.9)
REMINDER, ESCALATION = "notify.reminder", "notify.escalation"
NO_POLICY = "(no policy)"
# Open requests by age: (upper bound or None, label), youngest first.
AGE_BUCKETS: tuple[tuple[timedelta | None, str], ...] = (
    (timedelta(days=1), "under 1 day"),
    (timedelta(days=3), "1–3 days"),
    (timedelta(days=7), "3–7 days"),
    (timedelta(days=14), "7–14 days"),
    (None, "14 days or more"),
)


@dataclass(frozen=True)
class Spread:
    """How many durations were measured, and their p50 and p90 in seconds (None: none)."""

    count: int
    p50: float | None
    p90: float | None


@dataclass(frozen=True)
class PolicyRow:
    policy: str
    opened: int
    approved: int
    rejected: int
    rejected_by_gates: int
    reminders: int
    escalations: int
    first_review: Spread
    quorum: Spread


@dataclass(frozen=True)
class GroupRow:
    group: str
    first_review: Spread
    sign_off: Spread
    signed_last: int  # approved requests whose last needed sign-off was this group's
    still_short: int  # requests awaiting a decision that lack approvals from this group


@dataclass(frozen=True)
class Report:
    days: int
    since: datetime
    now: datetime
    policies: list[PolicyRow]
    groups: list[GroupRow]
    open_by_age: list[tuple[str, int]]
    reminders: int
    escalations: int
    percentiles_in: str  # "PostgreSQL" or "Python": where the per-policy percentiles came from


@dataclass
class _Request:
    pk: int
    policy: str
    created_at: datetime
    decision: str
    decided_at: datetime | None
    gate_rejected: bool
    needs: list[tuple[str, int]]


@dataclass(frozen=True)
class _Vote:
    pk: int
    created_at: datetime
    approves: bool  # a current approval (not stale)
    groups: tuple[str, ...]


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """What PostgreSQL's percentile_cont(fraction) answers: linear interpolation between the
    two closest ranks of the sorted values; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: list[float]) -> Spread:
    return Spread(len(values), *(percentile(values, f) for f in FRACTIONS))


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate percentile_cont(fraction) over `expression`."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, fraction: float):
        super().__init__(expression, fraction=float(fraction))


def _reviewed():
    return TransitionRequest.objects.exclude(kind=RequestKind.BREAK_GLASS)


def _policy_name():
    return KT("policy_snapshot__name")


def _quorum_reached(decision: str, votes: list[_Vote]) -> bool:
    """Approved with a current approval: the reviewers' quorum, not a gate's auto-approval."""
    return decision == Decision.APPROVED and any(v.approves for v in votes)


def report(
    *, days: int = DEFAULT_WINDOW, now: datetime | None = None, in_database: bool | None = None
) -> Report:
    """The analytics for the `days` (one of WINDOWS) up to `now` (see the module).

    `in_database`: compute the per-policy percentiles in PostgreSQL (the default there) or in
    Python (the default elsewhere, and how a test compares the two)."""
    if days not in WINDOWS:
        raise ValueError(f"The window is one of {', '.join(map(str, WINDOWS))} days, not {days}.")
    now = now or timezone.now()
    since = now - timedelta(days=days)
    window = _reviewed().filter(created_at__gte=since, created_at__lte=now)
    waiting = _reviewed().filter(decision=Decision.PENDING, created_at__lte=now)
    requests = _requests(window)
    open_requests = _requests(waiting)
    votes = _votes(Q(request__in=window) | Q(request__in=waiting))

    by_policy: dict[str, list[_Request]] = defaultdict(list)
    for request in requests:
        by_policy[request.policy].append(request)
    nudges = _nudges(since, now)
    names = sorted(set(by_policy) | {policy for policy, _ in nudges})
    if in_database is None:
        in_database = connection.vendor == "postgresql"
    spreads = _policy_spreads_in_database(window) if in_database else {}

    policies = []
    for name in names:
        rows = by_policy.get(name, [])
        first, quorum = spreads.get(name) or _policy_spreads(rows, votes)
        policies.append(
            PolicyRow(
                policy=name,
                opened=len(rows),
                approved=sum(r.decision == Decision.APPROVED for r in rows),
                rejected=sum(r.decision == Decision.REJECTED for r in rows),
                rejected_by_gates=sum(r.gate_rejected for r in rows),
                reminders=nudges[(name, REMINDER)],
                escalations=nudges[(name, ESCALATION)],
                first_review=first,
                quorum=quorum,
            )
        )
    return Report(
        days=days,
        since=since,
        now=now,
        policies=policies,
        groups=_group_rows(requests, open_requests, votes),
        open_by_age=_open_by_age(open_requests, now),
        reminders=sum(n for (_, action), n in nudges.items() if action == REMINDER),
        escalations=sum(n for (_, action), n in nudges.items() if action == ESCALATION),
        percentiles_in="PostgreSQL" if in_database else "Python",
    )


def _requests(queryset) -> list[_Request]:
    rows = queryset.annotate(policy_name=_policy_name()).values_list(
        "pk",
        "policy_name",
        "created_at",
        "decision",
        "decided_at",
        "decided_by_id",
        "policy_snapshot__require",
    )
    return [
        _Request(
            pk=pk,
            policy=policy or NO_POLICY,
            created_at=created_at,
            decision=decision,
            decided_at=decided_at,
            # A rejection without a person deciding it is the policy's: a required gate failed.
            gate_rejected=decision == Decision.REJECTED and decided_by is None,
            needs=[(r["group"], int(r["approvals"])) for r in require or []],
        )
        for pk, policy, created_at, decision, decided_at, decided_by, require in rows
    ]


def _votes(which: Q) -> dict[int, list[_Vote]]:
    """The votes on the requests `which` selects, per request, in the order they were cast
    (the order the counting places them in)."""
    found: dict[int, list[_Vote]] = defaultdict(list)
    rows = (
        Vote.objects.filter(which)
        .order_by("created_at", "pk")
        .values_list("request_id", "pk", "created_at", "decision", "stale", "groups")
    )
    for request_id, pk, created_at, decision, stale, groups in rows:
        approves = decision == VoteChoice.APPROVE and not stale
        found[request_id].append(_Vote(pk, created_at, approves, tuple(groups or ())))
    return found


def _nudges(since: datetime, now: datetime) -> Counter[tuple[str, str]]:
    """Reminders and escalations recorded in the window, per (policy, action): one grouped
    count over the audit log's action index."""
    rows = (
        AuditEvent.objects.filter(
            action__in=(REMINDER, ESCALATION), created_at__gte=since, created_at__lte=now
        )
        .values("request__policy_snapshot__name", "action")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("request__policy_snapshot__name", "action", "n")
    )
    return Counter({(policy or NO_POLICY, action): n for policy, action, n in rows})


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _policy_spreads(rows: list[_Request], votes: dict[int, list[_Vote]]) -> tuple[Spread, Spread]:
    """The per-policy percentiles in Python: the fallback where percentile_cont is missing."""
    first = [_seconds(votes[r.pk][0].created_at, r.created_at) for r in rows if votes.get(r.pk)]
    quorum = [
        _seconds(r.decided_at, r.created_at)
        for r in rows
        if r.decided_at is not None and _quorum_reached(r.decision, votes.get(r.pk, []))
    ]
    return spread(first), spread(quorum)


def _policy_spreads_in_database(window) -> dict[str, tuple[Spread, Spread]]:
    """The per-policy percentiles in one grouped PostgreSQL query (the same definitions as
    `_policy_spreads`)."""
    first_vote = Vote.objects.filter(request=OuterRef("pk")).order_by("created_at", "pk")
    approving = Vote.objects.filter(
        request=OuterRef("pk"), decision=VoteChoice.APPROVE, stale=False
    )
    annotated = window.annotate(
        policy_name=_policy_name(),
        first_at=Subquery(first_vote.values("created_at")[:1]),
        quorum_at=Case(
            When(Q(decision=Decision.APPROVED) & Exists(approving), then=F("decided_at")),
            default=None,
        ),
    )

    def epoch(field: str):
        return Extract(
            ExpressionWrapper(F(field) - F("created_at"), output_field=DurationField()), "epoch"
        )

    measures: dict[str, Aggregate] = {}
    for field in ("first_at", "quorum_at"):
        measures[f"{field}_n"] = Count(field)
        for fraction in FRACTIONS:
            measures[f"{field}_{fraction}"] = PercentileCont(epoch(field), fraction=fraction)
    rows = annotated.values("policy_name").annotate(**measures).order_by()
    return {
        row["policy_name"] or NO_POLICY: tuple(  # type: ignore[misc]
            Spread(row[f"{field}_n"], *(row[f"{field}_{f}"] for f in FRACTIONS))
            for field in ("first_at", "quorum_at")
        )
        for row in rows
    }


def _group_rows(
    requests: list[_Request], open_requests: list[_Request], votes: dict[int, list[_Vote]]
) -> list[GroupRow]:
    first: dict[str, list[float]] = defaultdict(list)
    sign_off: dict[str, list[float]] = defaultdict(list)
    signed_last: Counter[str] = Counter()
    still_short: Counter[str] = Counter()
    groups = {group for r in (*requests, *open_requests) for group, _ in r.needs}
    for request in requests:
        cast = votes.get(request.pk, [])
        seen: set[str] = set()
        for vote in cast:
            for group in vote.groups:
                if group not in seen:
                    seen.add(group)
                    first[group].append(_seconds(vote.created_at, request.created_at))
        if not _quorum_reached(request.decision, cast):
            continue
        approving = [v for v in cast if v.approves]
        counted = assign(request.needs, [(v.pk, v.groups) for v in approving])
        # Votes come in the order cast, so each group's last counted vote overwrites the others.
        last = {counted[v.pk]: v for v in approving if v.pk in counted}
        for group, vote in last.items():
            sign_off[group].append(_seconds(vote.created_at, request.created_at))
        if last:
            slowest = max(last, key=lambda g: (last[g].created_at, last[g].pk))
            signed_last[slowest] += 1
    for request in open_requests:
        approving = [v for v in votes.get(request.pk, []) if v.approves]
        placed = Counter(assign(request.needs, [(v.pk, v.groups) for v in approving]).values())
        for group, needed in request.needs:
            if placed[group] < needed:
                still_short[group] += 1
    return [
        GroupRow(
            group=group,
            first_review=spread(first[group]),
            sign_off=spread(sign_off[group]),
            signed_last=signed_last[group],
            still_short=still_short[group],
        )
        for group in sorted(groups | set(first))
    ]


def _open_by_age(open_requests: list[_Request], now: datetime) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    for request in open_requests:
        age = now - request.created_at
        label = next(label for bound, label in AGE_BUCKETS if bound is None or age < bound)
        counts[label] += 1
    return [(label, counts[label]) for _, label in AGE_BUCKETS]
