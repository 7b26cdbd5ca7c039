"""Rolling a target back: a request of kind `rollback` to put back a version that held it before.

The version to restore is the target's previous holder as the mirror's history shows it
(`registry.holdings`), or a version named explicitly that held the target at some point. The request
is decided by the policy's `rollback:` rules (`reviews.decisions.sizing`, which also sizes the
previews: the model page's button, `rollback_preview` for the API and the CLI) and carried out
like any other: with the policy's
`archive_existing`, the version it replaces is archived. It records which request it undoes (the one
that brought the current holder), so the request page can say what it undoes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction

from registry.holdings import HolderTimeline, Holding, holder_timeline
from registry.models import ModelVersion, RegisteredModel

from ..decisions import opening
from ..decisions.sizing import Sizing, size
from ..errors import (
    InvalidVersion,
    NothingToRollBack,
    QuorumError,
    UnknownModel,
    UnknownVersion,
)
from ..insight.holder_history import HolderHistory, holder_history
from ..models import ApprovalPolicy, RequestKind, TransitionRequest
from ..policies.matching import policies_loaded, policy_for
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
    # What the rollback will take, in words (`reviews.decisions.sizing`): "needs 1 of ml-leads".
    needs: str = ""

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


@dataclass
class RollbackPreview:
    """What a rollback of `target` to `version` will take, before anyone submits it."""

    model: str
    target: str
    version: int
    sizing: Sizing


def rollback_offers(history: HolderHistory) -> list[RollbackOffer]:
    """For each target with a previous holder that still exists, the rollback to it and what it
    will take. A query per offered target, bounded by the targets."""
    offers = []
    live = _live_versions(history)
    policies: list[ApprovalPolicy] | None = None
    model = history.timeline.model
    for target in history.timeline.targets():
        previous = history.timeline.previous(target)
        if previous is None or previous.version not in live:
            continue
        if policies is None:  # read once, and only when there is something to offer
            policies = policies_loaded()
        try:
            needs = _sized(model, target, previous.version, policies).words
        except QuorumError as refusal:  # no policy, two tied, the version gone
            needs = str(refusal)
        offers.append(
            RollbackOffer(
                target=target,
                version=previous.version,
                held_until=previous.end,
                replaced_by=previous.replaced_by,
                undoes=_bringer(history, target),
                needs=needs,
            )
        )
    return offers


def rollback_preview(
    *, model: str, target: str, to_version: int | str | None = None
) -> RollbackPreview:
    """What `rollback_request_create` with these arguments would open: the version it puts back
    and the sign-offs it takes, sized as the request will be. Refuses as it would."""
    registered, target, chosen, _ = _chosen(model, target, to_version)
    return RollbackPreview(
        model=registered.name,
        target=target,
        version=chosen.version,
        sizing=_sized(registered, target, chosen.version),
    )


def _sized(
    model: RegisteredModel,
    target: str,
    number: int,
    policies: list[ApprovalPolicy] | None = None,
) -> Sizing:
    candidate = ModelVersion.objects.live().filter(model=model, version=number).first()
    if candidate is None:
        raise UnknownVersion(f"{model.name} has no version {number} any more.")
    candidate.model = model
    return size(
        policy=policy_for(model.name, target, policies=policies),
        kind=RequestKind.ROLLBACK,
        candidate=candidate,
        baseline=opening.target_holder(model, target, exclude=candidate.pk),
        target=target,
        policies=policies,
    )


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
    registered, target, chosen, timeline = _chosen(model, target, to_version)
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


def _chosen(
    model: str, target: str, to_version: int | str | None
) -> tuple[RegisteredModel, str, Holding, HolderTimeline]:
    """The model, the target as written canonically, the holding a rollback puts back, and the
    model's holder timeline it was read from."""
    registered = RegisteredModel.objects.filter(name=model, deleted=False).first()
    if registered is None:
        raise UnknownModel(f"There is no registered model named {model!r}.")
    target = str(parse_target(target))
    timeline = holder_timeline(registered)
    return registered, target, _restorable(timeline, target, to_version), timeline


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
