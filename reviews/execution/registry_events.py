"""What the review engine concludes from changes the registry sync observed.

- A stage or alias move is credited to the Quorum transition that made it (the request is marked
  `running` before the job touches MLflow, so whichever sync sees the move can tell), or to the
  revert of an out-of-band move that made it (`reviews.execution.reverts`), or else recorded as
  out-of-band: someone changed MLflow directly. An out-of-band move of a target whose policy says
  `out_of_band: revert` is then undone by a worker.
- Then the pending requests on the changed models are decided again
  (`reviews.decisions.reevaluation.review_pending_requests`).

Runs inside the sync's transaction (the `changes_observed` signal), and from the reconciler for
anything left unclassified.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry.models import TRANSITION_KINDS, ChangeKind, ChangeOrigin, RegistryChange, Stage

from ..audit import chain
from ..decisions import reevaluation
from ..models import Decision, Execution, TransitionRequest
from . import reverts

# A transition finished this recently may still be the one a late sync observes.
RECENT_EXECUTION = timedelta(minutes=15)
# One whose move no sync has mirrored yet is awaited this long: the follow-up sync retries for
# QUORUM_TRANSITION_RETRY_WINDOW and the nightly full sync reads everything. A move never seen
# (moved back in MLflow before any sync ran) must not explain changes for ever after.
AWAITED_MIRROR = timedelta(days=1)


def on_changes_observed(sender, changes: list[RegistryChange], **kwargs) -> None:
    handle_changes(changes)


def handle_changes(changes: list[RegistryChange]) -> None:
    classify(changes)
    # What the changes mean for open requests is the decisions' to say.
    reevaluation.review_pending_requests(changes)


def classify_pending_changes() -> int:
    """Classifies transition changes nobody classified yet (a safety net for the reconciler)."""
    with transaction.atomic():
        pending = list(
            RegistryChange.objects.select_for_update(of=("self",))
            .filter(kind__in=TRANSITION_KINDS, origin=ChangeOrigin.UNKNOWN)
            .select_related("model", "version")[:500]
        )
        classify(pending)
    return len(pending)


def classify(changes: list[RegistryChange]) -> None:
    moves = [c for c in changes if c.kind in TRANSITION_KINDS and not c.origin]
    if not moves:
        return
    now = timezone.now()
    since, awaited = now - RECENT_EXECUTION, now - AWAITED_MIRROR
    executing = list(
        TransitionRequest.objects.filter(
            version__model__in={c.model_id for c in moves}, decision=Decision.APPROVED
        )
        .filter(
            # Started (a failed attempt may still have moved MLflow), or finished and its move
            # not mirrored yet (its follow-up sync may run late: MLflow went down right after the
            # move), or finished just now.
            Q(execution__in=[Execution.QUEUED, Execution.RUNNING, Execution.FAILED])
            & Q(execution_started_at__isnull=False)
            | Q(execution=Execution.DONE, awaiting_mirror=True, executed_at__gte=awaited)
            | Q(execution=Execution.DONE, executed_at__gte=since)
        )
        .select_related("version")
    )
    reverting = reverts.crediting({c.model_id for c in moves})
    mirrored = set()
    flagged = []
    for change in moves:
        request = next((r for r in executing if _explains(r, change)), None)
        if request is not None:
            change.origin = ChangeOrigin.QUORUM
            request.caused_changes.add(change)
            if change.version_id == request.version_id:
                mirrored.add(request.pk)
        elif (revert := reverts.explaining(reverting, change)) is not None:
            # Quorum undoing an out-of-band move: never reported (nor reverted) in its turn.
            change.origin = ChangeOrigin.QUORUM
            revert.caused_changes.add(change)
        else:
            flagged.append(change)
            change.origin = ChangeOrigin.OUT_OF_BAND
            chain.record(
                "registry.out_of_band",
                actor="mlflow",
                model_name=change.model.name,
                version=change.version.version if change.version is not None else None,
                details={"change": change.kind, "old": change.old, "new": change.new},
            )
        RegistryChange.objects.filter(pk=change.pk).update(origin=change.origin)
    if mirrored:
        TransitionRequest.objects.filter(pk__in=mirrored, awaiting_mirror=True).update(
            awaiting_mirror=False
        )
    # Policies that say `out_of_band: revert` have a worker undo what was flagged.
    reverts.schedule(flagged)


def _explains(request: TransitionRequest, change: RegistryChange) -> bool:
    """Would carrying out `request` have made `change`?"""
    if request.version.model_id != change.model_id:
        return False
    own_version = change.version_id == request.version_id
    target = request.parsed_target
    if alias := target.alias:
        if change.kind == ChangeKind.ALIAS_ADDED:
            return own_version and change.new == alias
        # The alias left whichever version held it before.
        return change.kind == ChangeKind.ALIAS_REMOVED and change.old == alias and not own_version
    if change.kind != ChangeKind.STAGE_CHANGED:
        return False
    if own_version:
        return change.new == target.stage
    return request.archives_holders and change.old == target.stage and change.new == Stage.ARCHIVED
