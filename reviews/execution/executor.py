"""Carrying out an approved transition in MLflow: what the transition job
(`reviews.execution.jobs.execute_transition`) runs.

It reads MLflow first and only records success when the version is already at its target, so a
retried, duplicated or re-enqueued job never transitions twice. Once MLflow shows the version at
its target the request is `done`. It mirrors its own move before it lets go of the model (the
versions the move changed, from what it read and MLflow's answer to the move: no sync), so the
holder timeline has every holding Quorum made; the follow-up sync is still queued, a job of its
own, coalesced per model and retried on its own, which mirrors the move when the job could not,
so a failing sync never runs the transition again. What follows a move is
called here, where it happens: the ratification a break-glass move needs, the revocation of the
proofs of the holdings it ended, the signed proof of the new one, the follow-up sync.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import redis
from django.db import transaction
from django.utils import timezone
from rq import get_current_job
from structlog.contextvars import bind_contextvars

from registry.jobs import enqueue_model_sync
from registry.mlflow_client import MlflowError, MlflowModel, MlflowVersion, RegistryClient
from registry.models import Stage
from registry.sync import mirror_move

from ..audit import chain
from ..decisions import standing
from ..decisions.counting import approvals_mark_stale
from ..decisions.handoff import retry_policy
from ..emergency import ratification
from ..models import Decision, Execution, RequestKind, TransitionRequest
from . import attestation, content_check, revocation
from .locks import model_moves_lock

logger = logging.getLogger(__name__)


def carry_out(request_id: int) -> str:
    """Moves the approved request's version to its target in MLflow, unless it is there already,
    and records what happened: the request done, the holdings it ended, the proof, the follow-up
    sync. Runs under the request's execution lock (`locks.execution_lock`, taken by the job)."""
    with transaction.atomic(), chain.deferred_appends():
        try:
            request = TransitionRequest.objects.locked(request_id)
        except TransitionRequest.DoesNotExist:
            return f"request #{request_id} does not exist: nothing to do"
        if request.decision != Decision.APPROVED:
            return f"request #{request_id} is not approved: nothing to do"
        if request.execution == Execution.DONE:
            return f"request #{request_id} was already carried out"
        if request.execution not in (Execution.QUEUED, Execution.RUNNING):
            # Failed for good (a stray retry after the end): only an admin's retry runs it again.
            return f"request #{request_id} is {request.execution}: nothing to do"
        bind_contextvars(model=request.version.model.name, version=request.version.version)
        request.execution = Execution.RUNNING
        request.execution_attempts += 1
        request.execution_started_at = timezone.now()
        request.save(update_fields=["execution", "execution_attempts", "execution_started_at"])
        chain.record(
            "transition.started", request=request, details={"attempt": request.execution_attempts}
        )
    name, number = request.version.model.name, request.version.version
    target = request.parsed_target
    client = RegistryClient()
    with model_moves_lock(request.version.model_id):
        current, archiving = _read(client, request)
        model = _model_of_alias_target(client, request)
        alias_holder = model.aliases.get(target.alias) if model is not None else None
        holders = [v.version for v in archiving]
        if current is None:
            # For good: MLflow never reuses a version number, so no retry can help (the page says
            # so instead of offering one), and the mirror's sync will record the deletion.
            _fail(
                request_id,
                f"{name} version {number} no longer exists in MLflow.",
                final=True,
                permanent=True,
            )
            _queue_follow_up_sync(name)
            return "failed: version gone"
        already = target.is_held_by(current)
        if not already:
            if refused := content_check.refusal(request, client):
                _fail(request_id, refused, final=True, stale=True)
                return "failed: not the approved content"
            answer = target.move(client, name, number, archive_existing=request.archives_holders)
            _mirror_the_move(request, answer or current, archiving, model)
    # From here on the version is at its target: whatever happens next, the request is done and
    # this job never moves MLflow again (a retry would read it there and only record it).
    request.execution, request.executed_at = Execution.DONE, timezone.now()
    request.execution_error = ""
    # Unless the mirror shows it there already, a sync will observe the move: credit it then.
    request.version.refresh_from_db(fields=["stage", "aliases"])
    request.awaiting_mirror = not target.is_held_by(request.version)
    with transaction.atomic(), chain.deferred_appends():
        recorded = TransitionRequest.objects.filter(
            pk=request_id, execution=Execution.RUNNING
        ).update(
            execution=request.execution,
            executed_at=request.executed_at,
            execution_error=request.execution_error,
            awaiting_mirror=request.awaiting_mirror,
        )
        if not recorded:  # another run recorded it (SQLite: no execution lock to wait on)
            return f"request #{request_id} was already carried out"
        left = [] if already else revocation.departures(request, current, holders, alias_holder)
        chain.record(
            "transition.done",
            request=request,
            details={"already_at_target": already, "archived_versions": [] if already else holders},
        )
        if request.kind == RequestKind.BREAK_GLASS:
            # The move is made: the policy's quorum now ratifies it, or it is unratified.
            ratification.ratification_open(request)
        # The proofs of the holdings this move ended: revoked by jobs queued after commit.
        revoking = revocation.record(
            request.version.model,
            left,
            left_at=request.executed_at,
            request=request,
            reasons={v: revocation.reason_for(request, v) for v, _ in left},
        )
    attestation.write_after_transition(request_id)  # the signed proof; never raises
    revocation.enqueue_all(revoking)
    _queue_follow_up_sync(name)
    return f"{name} version {number} is at {target}"


def _mirror_the_move(
    request: TransitionRequest,
    moved: MlflowVersion,
    archived: list[MlflowVersion],
    model: MlflowModel | None,
) -> None:
    """Mirrors the move just made, while this job still holds the model's moves lock, so that the
    holder timeline has every holding Quorum made when it made it: a version moved to Staging and
    a second later to Production would otherwise be seen by one later sync as "None ->
    Production", its Staging holding missing (and a rollback to it refused).

    Only what the move changed is recorded, without reading MLflow again: the version as MLflow
    answered the move (an alias move answers nothing: the version as read before it, the model's
    aliases as read before it with the alias moved, which takes it from its holder), and the
    versions it archived, as read before it. `registry.sync.mirror_move` records them as a sync
    would, credited to this request, which is running. It never waits for a sync (one stuck
    reading MLflow would hold every transition up): then, or when anything fails, the follow-up
    sync queued after the move mirrors it."""
    name = request.version.model.name
    target = request.parsed_target
    try:
        if target.is_alias:
            if model is None:  # MLflow did not have the model when the job read it
                raise LookupError(f"{name} was not found before its alias moved")
            model = replace(model, aliases={**model.aliases, target.alias: moved.version})
        versions = [moved, *(replace(v, stage=Stage.ARCHIVED.value) for v in archived)]
        if mirror_move(name, versions, model=model) is None:
            logger.info("a sync is running: the move of %r is mirrored by the follow-up sync", name)
    except Exception as error:  # the move is made: never fail the job for its mirror
        logger.warning("the move of %r is mirrored by the follow-up sync: %s", name, error)


def _read(
    client: RegistryClient, request: TransitionRequest
) -> tuple[MlflowVersion | None, list[MlflowVersion]]:
    """The version as MLflow has it now, and (when the move archives them) the other versions in
    its target stage, which the move will archive."""
    name, number = request.version.model.name, request.version.version
    if not request.archives_holders:
        return client.get_version(name, number), []
    versions = client.list_versions(name)  # one call, like get_version, with every stage
    current = next((v for v in versions if v.version == number), None)
    archiving = set(request.versions_to_archive(versions))
    return current, [v for v in versions if v.version in archiving]


def _model_of_alias_target(
    client: RegistryClient, request: TransitionRequest
) -> MlflowModel | None:
    """For an alias target, the model as MLflow has it before the move: the version its alias is
    on (whose proof for the alias ends when the alias moves) and the aliases the move changes.
    None for a stage target, or when MLflow has no such model."""
    if not request.parsed_target.is_alias:
        return None
    return client.get_model(request.version.model.name)


def _queue_follow_up_sync(name: str) -> None:
    """Queues the mirror's sync of the model the transition moved: its own job, one per model
    however many of its transitions finish meanwhile (`enqueue_model_sync` coalesces them), and
    retried on its own when it fails. The periodic sync is the backstop when Redis refuses."""
    job = get_current_job()
    try:
        # The job's connection: django-rq would open a new one for every transition.
        enqueue_model_sync(name, retry=retry_policy(), connection=job.connection if job else None)
    except (redis.RedisError, OSError) as error:
        logger.warning("could not queue the sync of %r (%s); the periodic sync will", name, error)


def record_error(request_id: int, error: Exception) -> None:
    """Records a job's exception as the request's execution error: the attempt failed (a retry
    follows) or, on the last attempt, the transition failed (its requester and staff are told)."""
    job = get_current_job()
    final = job is None or not job.retries_left
    message = str(error) if isinstance(error, MlflowError) else f"{type(error).__name__}: {error}"
    try:
        _fail(request_id, message, final=final)
    except Exception:  # the database itself is what failed: the reconciler finds the job later
        logger.exception("request #%s: could not record its error %r", request_id, message)


def _fail(
    request_id: int, error: str, *, final: bool, permanent: bool = False, stale: bool = False
) -> None:
    """Records a failed attempt (`final`: the transition failed); `stale`: the approvals were
    given for other content than MLflow holds, and stop counting."""
    with transaction.atomic(), chain.deferred_appends():
        try:
            request = TransitionRequest.objects.locked(request_id)
        except TransitionRequest.DoesNotExist:  # nothing left to record the error on
            return
        if request.execution in (Execution.DONE, Execution.FAILED):
            return
        request.execution = Execution.FAILED if final else Execution.QUEUED
        request.execution_error = error
        request.save(update_fields=["execution", "execution_error"])
        chain.record(
            "transition.failed" if final else "transition.attempt_failed",
            request=request,
            details={
                "attempt": request.execution_attempts,
                "error": error,
                **({standing.PERMANENT: True} if permanent else {}),
            },
        )
        if stale:
            approvals_mark_stale(request, reason=error)
