"""Rolling a target back: a request of kind `rollback` to put back a version that held it before.

The version to restore is the target's previous holder as the mirror's history shows it
(`registry.holdings`), or a version named explicitly that held the target at some point. The request
is decided by the policy's `rollback:` section when it has one
(`reviews.decisions.opening.request_create`) and carried out like any other: with the policy's
`archive_existing`, the version it replaces is archived. It records which request it undoes (the one
that brought the current holder), so the request page can say what it undoes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction

from registry.holdings import HolderTimeline, Holding, holder_timeline
from registry.models import RegisteredModel

from ..decisions import opening
from ..errors import InvalidVersion, NothingToRollBack, UnknownModel
from ..execution.holder_history import HolderHistory, holder_history
from ..models import RequestKind, TransitionRequest
from ..policies.spec import parse_target


@dataclass
class RollbackOffer:
    """What "Roll back <target> to v<version>" would do, as the model page offers it."""

    target: str
    version: int
    held_until: datetime | None
    replaced_by: list[int]
    # The request that brought the version now holding the target, if Quorum did.
    undoes: int | None

    @property
    def sentence(self) -> str:
        text = f"Roll back {self.target} to v{self.version}"
        details = []
        if self.held_until:
            details.append(f"held it until {self.held_until:%Y-%m-%d}")
        if self.replaced_by:
            by = ", ".join(f"v{n}" for n in self.replaced_by)
            details.append(f"replaced by {by}" + (f" in #{self.undoes}" if self.undoes else ""))
        return text + (f" ({', '.join(details)})" if details else "")


def rollback_offers(history: HolderHistory) -> list[RollbackOffer]:
    """For each target with a previous holder that still exists, the rollback to it."""
    offers = []
    live = _live_versions(history)
    for target in history.timeline.targets():
        previous = history.timeline.previous(target)
        if previous is None or previous.version not in live:
            continue
        offers.append(
            RollbackOffer(
                target=target,
                version=previous.version,
                held_until=previous.end,
                replaced_by=previous.replaced_by,
                undoes=_bringer(history, target),
            )
        )
    return offers


def _live_versions(history: HolderHistory) -> set[int]:
    """Versions whose last holding did not end in a deletion (a deleted version cannot return)."""
    deleted = {h.version for h in history.timeline.holdings if h.end_reason == "deleted"}
    return {h.version for h in history.timeline.holdings} - deleted


def _bringer(history: HolderHistory, target: str) -> int | None:
    """The request that brought the target's current holder, if a Quorum request did."""
    current = [e for e in history.of(target) if e.holding.is_current]
    return current[-1].began.request_id if current else None


@transaction.atomic
def rollback_request_create(
    *,
    model: str,
    target: str,
    requester: User,
    to_version: int | str | None = None,
    comment: str = "",
) -> TransitionRequest:
    """Opens a rollback of `target` of `model` to `to_version` (default: its previous holder).

    Refuses a version that never held the target since Quorum mirrors the model, one that holds
    it now, and a target that has had no other holder.
    """
    registered = RegisteredModel.objects.filter(name=model, deleted=False).first()
    if registered is None:
        raise UnknownModel(f"There is no registered model named {model!r}.")
    target = str(parse_target(target))
    timeline = holder_timeline(registered)
    chosen = _restorable(timeline, target, to_version)
    undoes_id = _bringer(holder_history(registered, timeline=timeline), target)
    undoes = TransitionRequest.objects.filter(pk=undoes_id).first() if undoes_id else None
    return opening.request_create(
        model=model,
        version=chosen.version,
        target=target,
        requester=requester,
        comment=comment,
        kind=RequestKind.ROLLBACK,
        undoes=undoes,
    )


def _restorable(timeline: HolderTimeline, target: str, to_version: int | str | None) -> Holding:
    holders_now = {h.version for h in timeline.current(target)}
    if to_version is None or str(to_version).strip() == "":
        previous = timeline.previous(target)
        if previous is None:
            raise NothingToRollBack(
                f"Nothing to roll back to: since Quorum started mirroring {timeline.model.name}, "
                f"no other version has held {target} and left it."
            )
        return previous
    try:
        number = int(str(to_version).strip())
    except ValueError:
        raise InvalidVersion(f"Version must be a whole number, got {str(to_version)!r}.") from None
    if number in holders_now:
        raise NothingToRollBack(f"v{number} holds {target} now: there is nothing to roll back.")
    held = [h for h in timeline.of(target) if h.version == number and h.end is not None]
    if not held:
        raise NothingToRollBack(
            f"v{number} has not held {target} since Quorum started mirroring "
            f"{timeline.model.name}: a rollback puts back a version that held it before. "
            "Request a promotion instead."
        )
    return held[-1]
