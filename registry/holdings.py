"""Who held each target of a model, from when to when, replayed from the mirror's recorded changes.

A holding is one version at one target (Production, Staging or an @alias) over a span of time.
It is rebuilt from the `RegistryChange` rows the sync wrote (stage moves, alias moves, versions
created already placed, deletions), in the order they were observed, in one query however long
the history. Times are when Quorum's sync observed a change, not when it happened in MLflow.

What happened before Quorum started mirroring the model is not invented: `mirrored_since` is the
first observation, `held_at` answers None ("unknown") before it, and a holding Quorum found
already in place (`start_seen` False) held its target at least since it was first observed.

Stages may hold several versions at once (MLflow moves a version to Production without archiving
the others unless asked), so a stage's answer is a list; an alias has at most one holder.
How a holding began in review terms (a request, a rollback, out of band) is the review app's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .models import ChangeKind, RegisteredModel, RegistryChange, Stage
from .targets import ALIAS_PREFIX, Target

# The changes that place or remove a version, and the model's first observation.
REPLAYED_KINDS = (
    ChangeKind.MODEL_CREATED,
    ChangeKind.VERSION_CREATED,
    ChangeKind.STAGE_CHANGED,
    ChangeKind.ALIAS_ADDED,
    ChangeKind.ALIAS_REMOVED,
    ChangeKind.VERSION_DELETED,
    ChangeKind.MODEL_DELETED,
)


@dataclass
class Holding:
    """`version` at `target` from `start` (observed) until `end` (None: holds it now)."""

    target: str
    version: int
    start: datetime
    # False: the version was already there when Quorum first saw it; it held the target at least
    # since `start`, for how long before is unknown.
    start_seen: bool
    start_change_id: int | None
    # The changes' `origin` (ChangeOrigin): made by Quorum, out of band, or not yet classified.
    start_origin: str = ""
    end: datetime | None = None
    end_change_id: int | None = None
    end_origin: str = ""
    # "moved" (to another stage, or the alias left it) or "deleted" (the version or the model).
    end_reason: str = ""
    # The versions that took the target over when this holding ended (same sync).
    replaced_by: list[int] = field(default_factory=list)
    # The syncs that observed the start and the end (who replaced whom is read from them).
    start_sync: int | None = None
    end_sync: int | None = None

    @property
    def is_current(self) -> bool:
        return self.end is None

    def covers(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


@dataclass
class HolderTimeline:
    """Every holding of one model, oldest first, and since when the mirror watches it."""

    model: RegisteredModel
    mirrored_since: datetime | None
    holdings: list[Holding]

    def targets(self) -> list[str]:
        """The targets anything ever held, stages first (Production, Staging), then aliases."""
        seen = {h.target for h in self.holdings}
        stages = [s for s in (Stage.PRODUCTION, Stage.STAGING) if s in seen]
        return stages + sorted(t for t in seen if t.startswith(ALIAS_PREFIX))

    def of(self, target: str) -> list[Holding]:
        return [h for h in self.holdings if h.target == target]

    def held_at(self, target: str, at: datetime) -> list[int] | None:
        """The versions that held `target` at `at`, as far as the mirror saw; None when `at` is
        before the mirror started watching this model (unknown, not "nothing")."""
        if self.mirrored_since is None or at < self.mirrored_since:
            return None
        return sorted({h.version for h in self.of(target) if h.covers(at)})

    def current(self, target: str) -> list[Holding]:
        return [h for h in self.of(target) if h.is_current]

    def previous(self, target: str) -> Holding | None:
        """The most recent holding of `target` that ended by a move (not a deletion) and whose
        version holds it no more: the version a rollback would restore."""
        now = {h.version for h in self.current(target)}
        ended = [
            h
            for h in self.of(target)
            if h.end is not None and h.end_reason == "moved" and h.version not in now
        ]
        return max(ended, key=lambda h: (h.end, h.end_change_id or 0), default=None)


def holder_timeline(model: RegisteredModel) -> HolderTimeline:
    """The model's holdings, replayed from its recorded changes in one query."""
    rows = (
        RegistryChange.objects.filter(model=model, kind__in=REPLAYED_KINDS)
        .order_by("observed_at", "id")
        .values_list(
            "id", "kind", "old", "new", "observed_at", "sync_run_id", "version__version", "origin"
        )
    )
    mirrored_since: datetime | None = None
    open_: dict[tuple[str, int], Holding] = {}
    done: list[Holding] = []
    # Holdings that began and ended in a sync, by (sync, target), to name who replaced whom
    # (a sync records one version's changes after another's, in either order).
    began_in: dict[tuple[int | None, str], list[Holding]] = {}
    ended_in: dict[tuple[int | None, str], list[Holding]] = {}

    def replaces(gone: Holding, number: int) -> None:
        if gone.version != number and number not in gone.replaced_by:
            gone.replaced_by.append(number)

    def begin(
        target: str, number: int, at: datetime, change_id: int, seen: bool, sync, origin: str
    ) -> None:
        if (target, number) in open_:
            return
        holding = Holding(target, number, at, seen, change_id, origin, start_sync=sync)
        open_[(target, number)] = holding
        if sync is not None:
            began_in.setdefault((sync, target), []).append(holding)
            for gone in ended_in.get((sync, target), []):
                replaces(gone, holding.version)

    def finish(
        target: str, number: int, at: datetime, change_id: int, reason: str, sync, origin: str
    ) -> None:
        holding = open_.pop((target, number), None)
        if holding is None:
            return
        holding.end, holding.end_change_id, holding.end_reason = at, change_id, reason
        holding.end_origin = origin
        holding.end_sync = sync
        done.append(holding)
        if sync is not None:
            ended_in.setdefault((sync, target), []).append(holding)
            for arrived in began_in.get((sync, target), []):
                replaces(holding, arrived.version)

    for change_id, kind, old, new, at, sync, number, origin in rows:
        if mirrored_since is None:
            mirrored_since = at
        if kind == ChangeKind.VERSION_CREATED and number is not None:
            placed = new or {}
            for target in _held_targets(placed.get("stage"), placed.get("aliases") or []):
                begin(target, number, at, change_id, False, sync, origin)
        elif kind == ChangeKind.STAGE_CHANGED and number is not None:
            if _holds(old):
                finish(str(old), number, at, change_id, "moved", sync, origin)
            if _holds(new):
                begin(str(new), number, at, change_id, True, sync, origin)
        elif kind == ChangeKind.ALIAS_REMOVED and number is not None:
            finish(f"{ALIAS_PREFIX}{old}", number, at, change_id, "moved", sync, origin)
        elif kind == ChangeKind.ALIAS_ADDED and number is not None:
            begin(f"{ALIAS_PREFIX}{new}", number, at, change_id, True, sync, origin)
        elif kind in (ChangeKind.VERSION_DELETED, ChangeKind.MODEL_DELETED):
            for target, held in list(open_):
                if kind == ChangeKind.MODEL_DELETED or held == number:
                    finish(target, held, at, change_id, "deleted", sync, origin)
    holdings = sorted([*done, *open_.values()], key=lambda h: (h.start, h.start_change_id or 0))
    return HolderTimeline(model=model, mirrored_since=mirrored_since, holdings=holdings)


def _holds(stage: object) -> bool:
    """Whether a version in `stage` holds it (Staging, Production), as opposed to None/Archived."""
    try:
        return isinstance(stage, str) and Target.parse(stage).has_holder
    except ValueError:
        return False


def _held_targets(stage: object, aliases: list[str]) -> list[str]:
    return ([str(stage)] if _holds(stage) else []) + [f"{ALIAS_PREFIX}{a}" for a in aliases]
