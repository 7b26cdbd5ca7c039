"""Who held each target of a model, and how each holding came about, in review terms.

`registry.holdings` replays the mirror's changes into holdings (version, target, from, until);
this module says how each began: carried out by a Quorum request (with its kind, requester and
approvers: a promotion, a rollback, a break-glass move), made in MLflow directly (out of band), or
already in place when Quorum first saw it. A fixed number of queries whatever the history's
length: the replay (with the changes' origins), and the requests that caused them with their votes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Prefetch

from registry.holdings import HolderTimeline, Holding, holder_timeline
from registry.models import ChangeOrigin, RegisteredModel

from ..models import RequestKind, TransitionRequest, Vote, VoteChoice


@dataclass
class How:
    """How a holding began: `kind` is a request kind (promotion, rollback, break_glass,
    ratification), "out_of_band", "first_seen" (already there when mirroring began) or
    "unclassified" (a move not yet credited to anyone)."""

    kind: str
    request_id: int | None = None
    requester: str = ""
    approvers: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return HOW_LABELS.get(self.kind, self.kind)

    @property
    def is_break_glass(self) -> bool:
        return self.kind == RequestKind.BREAK_GLASS

    def as_json(self) -> dict:
        return {
            "kind": self.kind,
            "request": self.request_id,
            "requester": self.requester or None,
            "approvers": self.approvers,
        }


HOW_LABELS = {
    RequestKind.PROMOTION: "Quorum request",
    RequestKind.ROLLBACK: "rollback",
    RequestKind.BREAK_GLASS: "break glass",
    RequestKind.RATIFICATION: "Quorum request",
    "out_of_band": "made in MLflow directly",
    "first_seen": "already there when Quorum started mirroring",
    "unclassified": "not yet classified",
}


@dataclass
class HistoryEntry:
    holding: Holding
    began: How
    # How the holding ended, when a Quorum request ended it (its successor's, or an archive).
    ended_by: How | None = None

    def as_json(self) -> dict:
        h = self.holding
        return {
            "target": h.target,
            "version": h.version,
            "start": h.start,
            "start_seen": h.start_seen,
            "end": h.end,
            "end_reason": h.end_reason or None,
            "replaced_by": h.replaced_by,
            "began": self.began.as_json(),
            "ended_by": self.ended_by.as_json() if self.ended_by else None,
        }


@dataclass
class HolderHistory:
    timeline: HolderTimeline
    entries: list[HistoryEntry]

    def of(self, target: str) -> list[HistoryEntry]:
        return [e for e in self.entries if e.holding.target == target]

    def held_at(self, target: str, at: datetime) -> list[int] | None:
        return self.timeline.held_at(target, at)


def holder_history(
    model: RegisteredModel, *, timeline: HolderTimeline | None = None
) -> HolderHistory:
    """The model's holdings, each with how it began and, when a request ended it, how.
    `timeline`: the model's replay when the caller has it already."""
    if timeline is None or timeline.model.pk != model.pk:
        timeline = holder_timeline(model)
    change_ids = {
        i for h in timeline.holdings for i in (h.start_change_id, h.end_change_id) if i is not None
    }
    origins = {h.start_change_id: h.start_origin for h in timeline.holdings}
    origins.update({h.end_change_id: h.end_origin for h in timeline.holdings})
    through = TransitionRequest.caused_changes.through
    caused = dict(
        through.objects.filter(registrychange_id__in=change_ids).values_list(
            "registrychange_id", "transitionrequest_id"
        )
    )
    approvals = Vote.objects.filter(decision=VoteChoice.APPROVE, stale=False).select_related("user")
    requests = {
        r.pk: r
        for r in TransitionRequest.objects.filter(pk__in=set(caused.values()))
        .select_related("requester")
        .prefetch_related(Prefetch("votes", queryset=approvals, to_attr="approvals"))
    }

    def how(change_id: int | None, *, first_seen: bool) -> How | None:
        request_id = caused.get(change_id) if change_id is not None else None
        request = requests.get(request_id) if request_id is not None else None
        if request is not None:
            return How(
                kind=request.kind,
                request_id=request.pk,
                requester=request.requester.get_username(),
                approvers=[v.user.get_username() for v in request.approvals],
            )
        if first_seen:
            return How("first_seen")
        origin = origins.get(change_id)
        if origin == ChangeOrigin.OUT_OF_BAND:
            return How("out_of_band")
        return How("unclassified") if change_id is not None else None

    entries = [
        HistoryEntry(
            holding=h,
            began=how(h.start_change_id, first_seen=not h.start_seen) or How("unclassified"),
            ended_by=how(h.end_change_id, first_seen=False) if h.end_reason == "moved" else None,
        )
        for h in timeline.holdings
    ]
    return HolderHistory(timeline=timeline, entries=entries)
