"""Undoing out-of-band moves: layer 2 of enforcement (docs/enforcement.md).

A policy with `out_of_band: revert` asks that a move into or out of a target it covers, made in
MLflow directly rather than by a Quorum transition, be undone. The sync that observes the move
classifies it (`reviews.execution.registry_events`) and calls `schedule`, which records an
`OutOfBandRevert` of the model and queues `revert_out_of_band` after commit. Alias moves arrive
by MLflow's alias webhooks, so they are undone within seconds; stage moves have no webhook and are
undone after the incremental sync that sees them.

The job reads MLflow under the model's moves lock (`reviews.execution.locks.model_moves_lock`, which
the transition job holds while it moves a version) and undoes what is still as the intruder left it:

- the intruding version goes back to the stage it was in, before anything else moves;
- then the versions that were moved out of a covered stage (by hand, or archived by an
  `archive_existing_versions` move) go back into it, without archiving anything: the stage is
  restored to exactly what Quorum last saw, which is what the policy's `archive_existing` made it;
- an alias goes back to the version that held it, or is deleted when nobody held it before.

It never fights Quorum: a target with a Quorum transition queued, running, or carried out since
the intrusion is left alone (that transition decides who holds it), and so is anything moved
again since the sync saw it. It never loops: the moves a revert makes are written on its row and
committed before MLflow is touched, so the sync that observes them credits them to Quorum. A
revert that keeps failing is retried `len(RETRY_INTERVALS)` times, then recorded as failed (and
mailed to staff); nothing retries it after that.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from functools import partial

import redis
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rq import Retry, get_current_job

from infra import queues
from registry.jobs import enqueue_model_sync
from registry.mlflow_client import MlflowError, RegistryClient
from registry.models import ChangeKind, RegisteredModel, RegistryChange, Stage
from registry.targets import Target

from ..audit import chain
from ..errors import QuorumError
from ..models import Decision, Execution, OutOfBand, OutOfBandRevert, RevertState, TransitionRequest
from ..policies.matching import policies_loaded, policy_for
from . import revocation
from .jobs import QUEUE
from .locks import model_moves_lock

logger = logging.getLogger(__name__)

# Waits between attempts of a failing revert (seconds); after the last the revert is failed.
RETRY_INTERVALS = [10, 60, 300]
# A Quorum transition of the target carried out this shortly before the intrusion was observed
# may be what the sync saw alongside it: it wins too.
QUORUM_MOVED_MARGIN = timedelta(minutes=15)
# A revert's moves are credited to it by a sync this long after it finished (the follow-up sync
# may run late, MLflow being down); the nightly full sync runs well within it.
AWAITED_MIRROR = timedelta(days=1)
# A revert still queued this long after it was recorded lost its job (Redis was down at commit):
# the reconciler queues it again.
LOST_AFTER = timedelta(minutes=2)


# -- which out-of-band moves are reverted ----------------------------------------------------


def targets_moved(change: RegistryChange) -> list[Target]:
    """The targets a stage or alias change moved a version into or out of."""
    if change.kind == ChangeKind.STAGE_CHANGED:
        return [Target(stage=Stage(str(stage))) for stage in (change.old, change.new) if stage]
    if change.kind == ChangeKind.ALIAS_ADDED:
        return [Target(alias=str(change.new))]
    if change.kind == ChangeKind.ALIAS_REMOVED:
        return [Target(alias=str(change.old))]
    return []


def schedule(changes: list[RegistryChange]) -> list[OutOfBandRevert]:
    """Records a revert per model for the out-of-band `changes` whose target's policy says
    `revert`, and queues each after commit. Runs in the sync's transaction."""
    if not changes:
        return []
    policies = policies_loaded()
    by_model: dict[int, list[RegistryChange]] = {}
    for change in changes:
        if any(
            _reverts(change.model.name, str(target), policies) for target in targets_moved(change)
        ):
            by_model.setdefault(change.model_id, []).append(change)
    scheduled = []
    for model_id, model_changes in by_model.items():
        revert = OutOfBandRevert.objects.create(model_id=model_id)
        revert.changes.set(model_changes)
        transaction.on_commit(partial(enqueue_revert, revert.pk))
        scheduled.append(revert)
    return scheduled


def _reverts(model_name: str, target: str, policies: list) -> bool:
    try:
        return policy_for(model_name, target, policies=policies).out_of_band == OutOfBand.REVERT
    except QuorumError:  # no policy covers it (nothing to protect), or two tie (flagged only)
        return False


def enqueue_revert(revert_id: int) -> bool:
    """Queues the revert's job once (`unique`); True if this call queued it. Redis trouble is
    only logged: the reconciler queues reverts still waiting (`requeue_lost`)."""
    revert = OutOfBandRevert.objects.filter(pk=revert_id).only("pk", "created_at").first()
    if revert is None:
        return False
    return queues.enqueue_once(
        QUEUE,
        revert_out_of_band,
        revert_id,
        job_id=queues.job_id_for("revert", revert),
        what=f"revert #{revert_id}",
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS)
        if RETRY_INTERVALS
        else None,
        description=f"revert of out-of-band moves #{revert_id}",
    )


def requeue_lost() -> list[int]:
    """Queues again the reverts still waiting for a job long after they were recorded."""
    waiting = OutOfBandRevert.objects.filter(
        state=RevertState.QUEUED, created_at__lt=timezone.now() - LOST_AFTER
    ).values_list("pk", flat=True)
    return [pk for pk in waiting if enqueue_revert(pk)]


# -- crediting a revert's own moves (no loop) ------------------------------------------------


def crediting(model_ids: Iterable[int]) -> list[OutOfBandRevert]:
    """The reverts of these models whose moves a sync may be observing now: running, failed after
    starting (an attempt may have moved something), or finished recently."""
    return list(
        OutOfBandRevert.objects.filter(model__in=set(model_ids))
        .filter(
            Q(state__in=[RevertState.RUNNING, RevertState.FAILED, RevertState.QUEUED])
            & Q(started_at__isnull=False)
            | Q(state=RevertState.DONE, finished_at__gte=timezone.now() - AWAITED_MIRROR)
        )
        .exclude(moves=[])
        .prefetch_related("caused_changes")
    )


def explaining(reverts: list[OutOfBandRevert], change: RegistryChange) -> OutOfBandRevert | None:
    """The revert whose own move `change` is, if any."""
    for revert in reverts:
        if revert.model_id != change.model_id:
            continue
        if any(_same(change, caused) for caused in revert.caused_changes.all()):
            continue  # credited already: this is a later move of the same kind
        if any(_made(move, change) for move in revert.moves):
            return revert
    return None


def _same(a: RegistryChange, b: RegistryChange) -> bool:
    return (a.kind, a.version_id, a.old, a.new) == (b.kind, b.version_id, b.old, b.new)


def _made(move: dict, change: RegistryChange) -> bool:
    """Would making `move` have shown up as `change`?"""
    number = change.version.version if change.version is not None else None
    if move["kind"] == "stage":
        return (
            change.kind == ChangeKind.STAGE_CHANGED
            and number == move["version"]
            and (change.old, change.new) == (move["old"], move["new"])
        )
    if change.kind == ChangeKind.ALIAS_ADDED:
        return change.new == move["alias"] and number == move["new"]
    if change.kind == ChangeKind.ALIAS_REMOVED:
        return change.old == move["alias"] and number == move["old"]
    return False


# -- the job ---------------------------------------------------------------------------------


def revert_out_of_band(revert_id: int) -> str:
    """RQ job: undoes the revert's out-of-band moves that are still as the intruder left them.
    Safe to run twice: what is back already is not moved again. An exception is recorded (the
    last attempt's as the revert's failure) before RQ sees it."""
    try:
        return _carry_out(revert_id)
    except Exception as error:
        _record_error(revert_id, error)
        raise


def _carry_out(revert_id: int) -> str:
    with transaction.atomic():
        revert = (
            OutOfBandRevert.objects.select_for_update()
            .select_related("model")
            .filter(pk=revert_id)
            .first()
        )
        if revert is None:
            return f"revert #{revert_id} does not exist: nothing to do"
        if revert.state not in (RevertState.QUEUED, RevertState.RUNNING):
            return f"revert #{revert_id} is {revert.state}: nothing to do"
        revert.state, revert.started_at = RevertState.RUNNING, timezone.now()
        revert.attempts += 1
        revert.save(update_fields=["state", "started_at", "attempts"])
    model = revert.model
    changes = list(revert.changes.select_related("version").order_by("pk"))
    client = RegistryClient()
    with model_moves_lock(model.pk):
        plan, skipped = _plan(client, model, changes)
        # Committed before MLflow moves, so whichever sync observes a move credits it to this
        # revert. An earlier attempt's moves stay: its sync may not have run yet.
        moves = revert.moves + [move for move in plan if move not in revert.moves]
        OutOfBandRevert.objects.filter(pk=revert.pk).update(moves=moves, skipped=skipped)
        for move in plan:
            _move(client, model.name, move)
    with transaction.atomic():
        state = RevertState.DONE if moves else RevertState.SKIPPED
        updated = OutOfBandRevert.objects.filter(pk=revert.pk, state=RevertState.RUNNING).update(
            state=state, finished_at=timezone.now(), error=""
        )
        if not updated:
            return f"revert #{revert_id} was recorded by another run"
        # A version sent back out of a target loses any proof it had there.
        revoking = revocation.record(
            model, revocation.revert_departures(moves), left_at=timezone.now(), revert=revert
        )
        chain.record(
            "out_of_band.reverted" if moves else "out_of_band.revert_skipped",
            actor="system",
            model_name=model.name,
            details={
                "revert": revert.pk,
                "moves": [move_words(move) for move in moves],
                "skipped": skipped,
            },
        )
    revocation.enqueue_all(revoking)
    if plan:
        _queue_follow_up_sync(model.name)
    return f"{model.name}: {len(plan)} moves reverted, {len(skipped)} left alone"


def _plan(
    client: RegistryClient, model: RegisteredModel, changes: list[RegistryChange]
) -> tuple[list[dict], list[str]]:
    """The moves that undo `changes` as MLflow has the model now, intruders first; and why the
    rest is left alone."""
    found = client.get_model(model.name)
    if found is None:
        return [], [f"{model.name} no longer exists in MLflow."]
    stages = {v.version: v.stage for v in client.list_versions(model.name)}
    quorums = _quorum_targets(model, changes)
    skipped: list[str] = []
    intruders: list[dict] = []
    restores: list[dict] = []
    aliases: dict[str, dict[str, int]] = {}
    for change in changes:
        if change.version is None:  # stage and alias changes always name their version
            continue
        if claimed := [t for t in targets_moved(change) if str(t) in quorums]:
            skipped.append(
                f"{describe(change)}: left to Quorum's own transition to {claimed[0]} "
                f"(request #{quorums[str(claimed[0])]})."
            )
            continue
        if change.kind == ChangeKind.STAGE_CHANGED:
            number = change.version.version
            now = stages.get(number)
            if now == change.old:
                continue  # back already (an earlier attempt, or someone else)
            if now != change.new:
                where = "deleted" if now is None else f"in {now}"
                skipped.append(f"{describe(change)}: v{number} is {where} now; left as it is.")
                continue
            move = {"kind": "stage", "version": number, "old": change.new, "new": change.old}
            restoring = Target(stage=Stage(str(change.old))).has_holder
            (restores if restoring else intruders).append(move)
        else:
            held = aliases.setdefault(str(change.old or change.new), {})
            held["removed" if change.kind == ChangeKind.ALIAS_REMOVED else "added"] = (
                change.version.version
            )
    for alias, held in aliases.items():
        intruder, previous = held.get("added"), held.get("removed")
        if previous is not None and previous not in stages:
            previous = None  # the version that held it is gone: nobody can hold it again
        holder = found.aliases.get(alias)
        if holder == previous:
            continue
        if holder != intruder:
            who = f"v{holder}" if holder is not None else "nobody"
            skipped.append(f"@{alias} is held by {who} now; left as it is.")
            continue
        intruders.append({"kind": "alias", "alias": alias, "old": intruder, "new": previous})
    return intruders + restores, skipped


def _quorum_targets(model: RegisteredModel, changes: list[RegistryChange]) -> dict[str, int]:
    """The targets (as text) of the changes that a Quorum transition is carrying out, is about
    to, or carried out since the intrusion: target -> request id."""
    targets = {str(t) for change in changes for t in targets_moved(change)}
    since = min(change.observed_at for change in changes) - QUORUM_MOVED_MARGIN
    requests = TransitionRequest.objects.filter(
        version__model=model, target__in=targets, decision=Decision.APPROVED
    ).filter(
        Q(execution__in=[Execution.QUEUED, Execution.RUNNING])
        | Q(execution=Execution.DONE, executed_at__gte=since)
    )
    return dict(requests.values_list("target", "pk"))


def _move(client: RegistryClient, name: str, move: dict) -> None:
    if move["kind"] == "stage":
        # Never archiving: the versions to put back into the stage follow, one by one.
        Target(stage=Stage(move["new"])).move(client, name, move["version"])
    elif move["new"] is None:
        client.delete_alias(name, move["alias"])
    else:
        Target(alias=move["alias"]).move(client, name, move["new"])


def describe(change: RegistryChange) -> str:
    number = change.version.version if change.version is not None else "?"
    if change.kind == ChangeKind.ALIAS_ADDED:
        return f"@{change.new} set on v{number}"
    if change.kind == ChangeKind.ALIAS_REMOVED:
        return f"@{change.old} removed from v{number}"
    return f"v{number} moved from {change.old} to {change.new}"


def move_words(move: dict) -> str:
    """A revert's move as a person reads it."""
    if move["kind"] == "stage":
        return f"v{move['version']} moved back from {move['old']} to {move['new']}"
    if move["new"] is None:
        return f"@{move['alias']} removed from v{move['old']} (no version held it before)"
    return f"@{move['alias']} moved back from v{move['old']} to v{move['new']}"


def _queue_follow_up_sync(name: str) -> None:
    job = get_current_job()
    try:
        enqueue_model_sync(name, connection=job.connection if job else None)
    except (redis.RedisError, OSError) as error:
        logger.warning("could not queue the sync of %r (%s); the periodic sync will", name, error)


def _record_error(revert_id: int, error: Exception) -> None:
    """The attempt's error on the revert; on the last attempt the revert is failed, audited
    (`out_of_band.revert_failed`, mailed to staff) and never tried again."""
    job = get_current_job()
    final = job is None or not job.retries_left
    message = str(error) if isinstance(error, MlflowError) else f"{type(error).__name__}: {error}"
    try:
        with transaction.atomic():
            revert = (
                OutOfBandRevert.objects.select_for_update()
                .select_related("model")
                .filter(pk=revert_id, state=RevertState.RUNNING)
                .first()
            )
            if revert is None:
                return
            revert.error = message
            revert.state = RevertState.FAILED if final else RevertState.QUEUED
            revert.finished_at = timezone.now() if final else None
            revert.save(update_fields=["error", "state", "finished_at"])
            if final:
                chain.record(
                    "out_of_band.revert_failed",
                    actor="system",
                    model_name=revert.model.name,
                    details={
                        "revert": revert.pk,
                        "error": message,
                        "attempts": revert.attempts,
                        "moves": [move_words(move) for move in revert.moves],
                    },
                )
    except Exception:  # the database itself failed: the revert stays as it was
        logger.exception("revert #%s: could not record its error %r", revert_id, message)
