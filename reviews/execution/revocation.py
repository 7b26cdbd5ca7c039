"""Proofs end when the holding ends: a version that leaves a target loses its proof for it.

Whatever moves a version out of a target through Quorum says so here: the transition job (a
promotion that archives the stage's other versions or takes an alias from another version, the
moved version leaving the stage it was in, a rollback, a break glass, the revert of an
unratified break glass) and the revert of out-of-band moves. `departures` says who leaves what;
`record` keeps one `ProofRevocation` per version, target and move, in the transaction that
records the move, and its job is queued once that has committed (`infra.queues.enqueue_once`,
retried with the transitions' backoff; the reconciler queues again a pending one whose job
Redis lost).

The job replaces the proof tag (`quorum.attestation.<target>`) by a signed revocation, an in-toto
Statement of type `urn:quorum:revocation:v1` with the same subject, saying when the version left
and why; `quorum verify` then exits 1 with that sentence ("left Production at 2026-12-06 02:10 UTC:
rolled back in #12"). A proof written after the version left (it came back through Quorum) is
newer than the revocation and is left alone; a version with no proof there has nothing to revoke.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job

from infra import queues
from quorum_cli import attestation as proof
from registry.mlflow_client import MlflowError, MlflowVersion, RegistryClient
from registry.models import ModelVersion, RegisteredModel
from registry.targets import Target

from ..audit import chain
from ..decisions.handoff import retry_policy
from ..errors import QuorumError
from ..links import request_url
from ..models import (
    OutOfBandRevert,
    ProofRevocation,
    RequestKind,
    RevocationState,
    TransitionRequest,
)
from .attestation import signed
from .proof_keys import signer

logger = logging.getLogger(__name__)

QUEUE = "transitions"
# Longer than the transition job that records a revocation takes to queue its job.
PENDING_GRACE = timedelta(minutes=2)


# -- who leaves what ----------------------------------------------------------------------------


def departures(
    request: TransitionRequest,
    current: MlflowVersion,
    archived: list[int],
    alias_holder: int | None,
) -> list[tuple[int, str]]:
    """The (version, target) pairs that carrying out `request` ends, as MLflow had the model
    before the move: the versions it archives, the version the alias is taken from, and the moved
    version itself when it leaves a stage that has a holder (Production → Staging)."""
    target = request.parsed_target
    left = [(number, str(target)) for number in archived]
    if target.is_alias:
        if alias_holder is not None and alias_holder != current.version:
            left.append((alias_holder, str(target)))
    elif current.stage != str(target) and current.stage in ("Staging", "Production"):
        left.append((current.version, current.stage))
    return left


def revert_departures(moves: list[dict]) -> list[tuple[int, str]]:
    """The (version, target) pairs a revert of out-of-band moves ends (`reverts._plan`'s moves):
    an intruder sent back from a stage with a holder, or an alias taken back from it."""
    left = []
    for move in moves:
        if move["kind"] == "stage" and Target.parse(str(move["old"])).has_holder:
            left.append((move["version"], str(move["old"])))
        elif move["kind"] == "alias" and move["old"] is not None:
            left.append((move["old"], f"@{move['alias']}"))
    return left


def reason_for(request: TransitionRequest, number: int) -> str:
    """Why `number` left its target when `request` was carried out, in words."""
    if number == request.version.version:
        return f"moved to {request.target} in #{request.pk}"
    undone = request.undoes
    if (
        request.kind == RequestKind.ROLLBACK
        and undone is not None
        and undone.kind == RequestKind.BREAK_GLASS
        and request.decided_by_id is None
    ):
        return f"break glass #{undone.pk} was not ratified; undone in #{request.pk}"
    if request.kind == RequestKind.ROLLBACK:
        return f"rolled back to v{request.version.version} in #{request.pk}"
    if request.kind == RequestKind.BREAK_GLASS:
        return f"replaced by v{request.version.version} by break glass in #{request.pk}"
    return f"replaced by v{request.version.version} in #{request.pk}"


# -- recording and queueing ---------------------------------------------------------------------


def record(
    model: RegisteredModel,
    left: list[tuple[int, str]],
    *,
    left_at: datetime,
    request: TransitionRequest | None = None,
    revert: OutOfBandRevert | None = None,
    reasons: dict[int, str] | None = None,
) -> list[int]:
    """Keeps a pending revocation for each (version, target) in `left` (once per move); returns
    the ids of those it created. Call it inside the transaction that records the move, and
    `enqueue_all` with the ids once that transaction has committed."""
    wanted = [number for number, _ in left]
    versions = {v.version: v for v in ModelVersion.objects.filter(model=model, version__in=wanted)}
    ids = []
    for number, target in left:
        version = versions.get(number)
        if version is None:  # not mirrored yet: it has no proof of Quorum's either
            continue
        reason = (reasons or {}).get(number) or (
            f"moved there out of band, undone by Quorum (revert #{revert.pk if revert else '?'})"
        )
        revocation, created = ProofRevocation.objects.get_or_create(
            version=version,
            target=target,
            request=request,
            revert=revert,
            defaults={"left_at": left_at, "reason": reason},
        )
        if created:
            ids.append(revocation.pk)
    return ids


def enqueue_all(revocation_ids: list[int]) -> None:
    """Queues each revocation's job once; Redis trouble leaves them pending for the reconciler."""
    for revocation_id in revocation_ids:
        enqueue_revoke(revocation_id)


def job_id(revocation: ProofRevocation) -> str:
    return queues.job_id_for("revocation", revocation)


def enqueue_revoke(revocation_id: int, *, replace: bool = False) -> bool:
    revocation = ProofRevocation.objects.filter(pk=revocation_id).only("pk", "created_at").first()
    if revocation is None:
        return False
    return queues.enqueue_once(
        QUEUE,
        revoke_job,
        revocation_id,
        job_id=job_id(revocation),
        what=f"revocation #{revocation_id}",
        replace=replace,
        retry=retry_policy(),
        description=f"proof revocation #{revocation_id}",
    )


def revoke_job(revocation_id: int) -> str:
    """The RQ job: the last attempt that fails leaves the revocation `failed`."""
    job = get_current_job()
    return revoke(revocation_id, final=job is None or not job.retries_left)


def requeue_pending() -> list[int]:
    """Pending revocations whose job Redis no longer has: queued again (by the reconciler)."""
    pending = list(
        ProofRevocation.objects.filter(
            state=RevocationState.PENDING, created_at__lt=timezone.now() - PENDING_GRACE
        ).only("pk", "created_at")
    )
    if not pending:
        return []
    connection = queues.get_queue(QUEUE).connection
    requeued = []
    for revocation in pending:
        try:
            status = Job.fetch(job_id(revocation), connection=connection).get_status()
        except NoSuchJobError:
            status = None
        if status not in queues.LIVE_JOB_STATES and enqueue_revoke(revocation.pk, replace=True):
            requeued.append(revocation.pk)
    return requeued


# -- writing it ---------------------------------------------------------------------------------


def revoke(revocation_id: int, *, final: bool = False) -> str:
    """Replaces the version's proof for the target by a signed revocation. Writing it twice is
    harmless; a proof newer than the departure (the version came back) is left alone."""
    revocation = (
        ProofRevocation.objects.select_related("version__model", "request")
        .filter(pk=revocation_id)
        .first()
    )
    if revocation is None or revocation.state != RevocationState.PENDING:
        return f"revocation #{revocation_id}: nothing to do"
    version, tag = revocation.version, proof.tag_for(revocation.target)
    client = RegistryClient()
    try:
        found = client.get_version(version.model.name, version.version)
        held = found.tags.get(tag) if found is not None else None
        statement = _current_statement(held)
        if statement is None or _newer_than(statement, revocation.left_at):
            return _finish(revocation, RevocationState.NOTHING, tag)
        value = _signed_revocation(revocation, statement)
        client.set_version_tag(version.model.name, version.version, tag, value)
    except Exception as error:
        _record_failure(revocation_id, error, final=final)
        raise
    return _finish(revocation, RevocationState.WRITTEN, tag)


def _current_statement(value: str | None) -> dict | None:
    """The approval Statement a tag holds now (Quorum's own tag, which the guard keeps to
    Quorum), None when there is none to revoke (no tag, a revocation already, unreadable)."""
    if not value:
        return None
    try:
        statement = json.loads(proof.envelope_of(value).payload)
    except (proof.AttestationError, ValueError):
        return None
    if not isinstance(statement, dict) or statement.get("predicateType") == proof.REVOCATION_TYPE:
        return None
    return statement


def _newer_than(statement: dict, left_at: datetime) -> bool:
    executed = (statement.get("predicate") or {}).get("executed_at")
    try:
        return isinstance(executed, str) and datetime.fromisoformat(executed) > left_at
    except (TypeError, ValueError):
        return False


def _signed_revocation(revocation: ProofRevocation, revoked: dict) -> str:
    version = revocation.version
    request = revocation.request
    predicate = revoked.get("predicate") or {}
    statement = {
        "_type": proof.STATEMENT_TYPE,
        "subject": revoked.get("subject") or [],
        "predicateType": proof.REVOCATION_TYPE,
        "predicate": {
            "model": {
                "name": version.model.name,
                "version": version.version,
                "run_id": version.run_id,
                "source": version.source,
            },
            "target": revocation.target,
            "left_at": f"{revocation.left_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
            "reason": revocation.reason,
            "by": {
                "request": request.pk if request else None,
                "kind": request.kind if request else "out_of_band_revert",
                "url": request_url(request.pk) if request else None,
                "revert": revocation.revert_id,
            },
            "revokes": {"request": (predicate.get("request") or {}).get("id")},
            "issuer": settings.QUORUM_BASE_URL,
        },
    }
    return signed(statement, signer())


def _finish(revocation: ProofRevocation, state: str, tag: str) -> str:
    with transaction.atomic():
        updated = ProofRevocation.objects.filter(
            pk=revocation.pk, state=RevocationState.PENDING
        ).update(
            state=state,
            attempts=revocation.attempts + 1,
            error="",
            written_at=timezone.now(),
        )
        if updated and state == RevocationState.WRITTEN:  # nothing revoked: nothing to audit
            chain.record(
                "proof.revoked",
                actor="system",
                request=revocation.request,
                model_name=revocation.version.model.name,
                version=revocation.version.version,
                details={
                    "version": revocation.version.version,
                    "target": revocation.target,
                    "tag": tag,
                    "reason": revocation.reason,
                    "left_at": revocation.left_at.isoformat(),
                },
            )
    v = revocation.version
    return f"{v.model.name} v{v.version} → {revocation.target}: {state}"


def _record_failure(revocation_id: int, error: Exception, *, final: bool) -> None:
    message = (
        str(error)
        if isinstance(error, MlflowError | QuorumError)
        else f"{type(error).__name__}: {error}"
    )
    try:
        with transaction.atomic():
            revocation = ProofRevocation.objects.select_for_update().get(pk=revocation_id)
            revocation.attempts += 1
            revocation.error = message
            if final:
                revocation.state = RevocationState.FAILED
            revocation.save(update_fields=["attempts", "error", "state"])
            chain.record(
                "proof.revocation_failed" if final else "proof.revocation_attempt_failed",
                actor="system",
                request=revocation.request,
                model_name=revocation.version.model.name,
                version=revocation.version.version,
                details={
                    "version": revocation.version.version,
                    "target": revocation.target,
                    "attempt": revocation.attempts,
                    "error": message,
                },
            )
    except Exception:  # the database is what failed: the reconciler finds it pending
        logger.exception("revocation #%s: could not record its failure %r", revocation_id, message)
