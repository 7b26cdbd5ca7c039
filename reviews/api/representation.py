"""Transition requests as the API answers them, each read in a fixed number of queries; pages
of any list; and the lookups of a request by id that the endpoints share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db.models import Prefetch

from ..decisions import counting, gates, standing
from ..errors import RequestNotFound
from ..links import request_url
from ..models import TransitionRequest, Vote
from .schemas import PageIn

# What `request_out` reads and nothing more: building model instances and decoding JSON columns
# (the version's params and metrics, the metric snapshots) is most of a list's cost otherwise.
REQUEST_COLUMNS = (
    *(
        f.name
        for f in TransitionRequest._meta.concrete_fields
        if f.name not in ("candidate_metrics", "baseline_metrics")
    ),
    "version__version",
    "version__model__name",
    "requester__username",
    "decided_by__username",
)
VOTE_COLUMNS = (
    "request",
    "decision",
    "comment",
    "groups",
    "stale",
    "stale_reason",
    "stale_cause",
    "seen_digest",
    "created_at",
    "user__username",
)
# What a summary reads: plain rows, no model instances, nothing of the gates or comments.
SUMMARY_COLUMNS = (
    "id",
    "version__model__name",
    "version__version",
    "target",
    "requester__username",
    "decision",
    "execution",
    "policy_snapshot",
    "created_at",
    "expires_at",
)
COUNTED_VOTE_COLUMNS = ("request", "decision", "groups", "stale", "created_at", "user__username")


def requests_with_details():
    """Requests with everything their representation reads, in a fixed number of queries."""
    votes = Vote.objects.select_related("user").only(*VOTE_COLUMNS)
    return (
        TransitionRequest.objects.select_related("version__model", "requester", "decided_by")
        .only(*REQUEST_COLUMNS)
        .prefetch_related(Prefetch("votes", queryset=votes))
    )


def requirements_out(count: counting.Tally) -> list[dict]:
    return [
        {"group": p.group, "needed": p.needed, "approvers": list(p.approvers)}
        for p in count.progress
    ]


def request_summaries(requests) -> list[dict]:
    """`requests` (a page of them) as summaries, in two queries: the rows, and their votes."""
    rows = list(requests.values(*SUMMARY_COLUMNS))
    votes = defaultdict(list)
    counted = Vote.objects.filter(request__in=[row["id"] for row in rows])
    for vote in counted.select_related("user").only(*COUNTED_VOTE_COLUMNS):
        votes[vote.request_id].append(vote)
    return [
        summary_out(row, counting.tally_of(row["policy_snapshot"], votes[row["id"]]))
        for row in rows
    ]


def summary_out(row: dict, count: counting.Tally) -> dict:
    return {
        "id": row["id"],
        "model": row["version__model__name"],
        "version": row["version__version"],
        "target": row["target"],
        "requester": row["requester__username"],
        "decision": row["decision"],
        "execution": row["execution"] or None,
        "status": standing.status_of(row["decision"], row["execution"], row["expires_at"]),
        "requirements": requirements_out(count),
        "approved_by": list(count.approvers),
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "url": request_url(row["id"]),
    }


def request_out(request: TransitionRequest) -> dict:
    votes = list(request.votes.all())
    count = counting.tally(request, votes)
    return {
        "id": request.pk,
        "model": request.version.model.name,
        "version": request.version.version,
        "target": request.target,
        "requester": request.requester.get_username(),
        "comment": request.comment,
        "rejection_answer": request.rejection_answer,
        "decision": request.decision,
        "decision_reason": request.decision_reason,
        "decided_by": request.decided_by.get_username() if request.decided_by else None,
        "decided_at": request.decided_at,
        "execution": request.execution or None,
        "status": standing.status(request),
        "execution_error": request.execution_error,
        "execution_attempts": request.execution_attempts,
        "executed_at": request.executed_at,
        "attestation": request.attestation or None,
        "gates": gates.with_verdicts(request.gate_results),
        "content_digest": request.content_digest or None,
        "metric_pins": request.metric_pins or {},
        "escalation": request.policy_snapshot.get("escalation", {}).get("applied", []),
        "leaves": request.policy_snapshot.get("leaves"),
        "requirements": requirements_out(count),
        "approved_by": list(count.approvers),
        "votes": [
            {
                "user": v.user.get_username(),
                "decision": v.decision,
                "comment": v.comment,
                "groups": v.groups,
                "counted_for": count.counted_for.get(v.pk),
                "stale": v.stale,
                "stale_reason": v.stale_reason,
                "stale_cause": v.stale_cause,
                "seen_digest": v.seen_digest or None,
                "created_at": v.created_at,
            }
            for v in votes
        ],
        "created_at": request.created_at,
        "expires_at": request.expires_at,
        "url": request_url(request.pk),
        "kind": request.kind,
        "undoes": request.undoes_id,
        "ratifies": request.ratifies_id,
    }


def paginate(queryset, page: PageIn, represent: Callable[[Any], list[dict]]) -> dict:
    """One page of `queryset`; only that page is loaded and represented (`represent` turns the
    page's rows into its items)."""
    rows = queryset[page.offset : page.offset + page.limit]
    return {"count": queryset.count(), "items": represent(rows)}


def request_out_by_id(pk: int) -> dict:
    """Request #`pk` as `request_out` answers it; `RequestNotFound` (404) when there is none."""
    request = requests_with_details().filter(pk=pk).first()
    if request is None:
        raise RequestNotFound(f"There is no request #{pk}.")
    return request_out(request)


def request_or_404(pk: int) -> TransitionRequest:
    """Request #`pk` with its version and model; `RequestNotFound` (404) when there is none."""
    request = TransitionRequest.objects.select_related("version__model").filter(pk=pk).first()
    if request is None:
        raise RequestNotFound(f"There is no request #{pk}.")
    return request
