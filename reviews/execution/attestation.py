"""The signed approval proof on every version Quorum promotes.

Once a transition job has moved a version, it calls `write_after_transition`: an in-toto
Statement (v1) whose subject is the version's content digest (`registry.content`, the bytes
approved: the predicate `urn:quorum:approval:v2`) saying who approved it, under which policy,
with which gate results, as which kind of request (for break glass: ratified or not), signed
in a DSSE envelope with the Ed25519 key QUORUM_SIGNING_KEY, is written to the version in MLflow
as the tag `quorum.attestation.<target>` (`quorum_cli.attestation` holds the format, shared with
`quorum verify`). A deployment step checks it with `quorum verify MODEL VERSION --target T`.

Writing the proof never undoes or repeats the transition: the version moved and the request is
`done` whatever happens here. A failed write is recorded on the request (`attestation` pending,
with the error) and in the audit trail (`attestation.attempt_failed`), then retried by a job of
its own with the transitions' backoff; once that is spent the request's proof is `failed`
(`attestation.failed`), which the request page and the admin show, and
`manage.py write_attestation ID` tries again. The reconciler re-queues a pending proof whose job
Redis lost.

The keys it is signed with are `reviews.execution.proof_keys`.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

from infra import queues
from quorum_cli import attestation as proof
from registry import content
from registry.mlflow_client import MlflowError, RegistryClient
from registry.models import ModelVersion, VersionContent

from ..audit import chain
from ..decisions import counting
from ..decisions.handoff import retry_policy
from ..errors import QuorumError
from ..links import request_url
from ..models import Attestation, Execution, RequestKind, TransitionRequest
from .proof_keys import signer

logger = logging.getLogger(__name__)

QUEUE = "transitions"
# Longest decision reason kept in full when the proof must be shortened to fit its tag.
SHORT_REASON = 500


# -- the Statement --------------------------------------------------------------------------------


def policy_digest(snapshot: dict) -> str:
    """SHA-256 of the policy as the request snapshotted it, as canonical JSON (sorted keys, no
    whitespace): what the request was decided under, whatever the policy says today."""
    return hashlib.sha256(proof.canonical_json(snapshot)).hexdigest()


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def approved_content(version: ModelVersion) -> VersionContent:
    """The version's content as Quorum read it (the digest approvals bind), read from MLflow now
    and kept when no worker has read it yet; `QuorumError` when its files cannot be read: a proof
    names the bytes, and there are none to name."""
    stored = content.content_of(version)
    if stored is None or stored.source != version.source:
        stored = content.store(version, content.read_content(version))
    if not stored.known:
        raise QuorumError(
            f"{version} has no known content ({stored.reason}): a proof names the model's bytes, "
            "so none can be signed until its files can be read"
        )
    return stored


def statement_of(request: TransitionRequest, *, compact: bool = False) -> dict:
    """The in-toto Statement for an executed request: its subject is the version's content
    digest. `compact` replaces the approvers by their count and a digest of the list, and drops
    the file list, for a proof too long for a tag (the page has every name)."""
    version = request.version
    files = approved_content(version)
    name, number = version.model.name, version.version
    votes = list(request.votes.select_related("user"))
    count = counting.tally(request, votes)
    approvers = [
        {"user": v.user.get_username(), "group": count.counted_for[v.pk], "at": _time(v.created_at)}
        for v in votes
        if v.pk in count.counted_for
    ]
    reason = request.decision_reason
    predicate = {
        "model": {
            "name": name,
            "version": number,
            "run_id": version.run_id,
            "source": version.source,
        },
        "target": request.target,
        "content": {
            "location": files.location,
            "model_signing_sha256": files.model_signing_digest,
            "file_count": files.file_count,
            "total_size": files.total_size,
            "files": files.files,
        },
        "request": {
            "id": request.pk,
            "kind": request.kind,
            "url": request_url(request.pk),
            "requester": request.requester.get_username(),
            "created_at": _time(request.created_at),
        },
        "policy": {
            "name": request.policy_snapshot.get("name", ""),
            "sha256": policy_digest(request.policy_snapshot),
        },
        "approvers": approvers,
        "gates": request.gate_results,
        "decision": {
            "decided_at": _time(request.decided_at),
            "decided_by": request.decided_by.get_username() if request.decided_by else None,
            "reason": reason,
        },
        "executed_at": _time(request.executed_at),
        "issuer": settings.QUORUM_BASE_URL,
    }
    if compact:
        predicate["approvers"] = []
        predicate["approvers_omitted"] = {
            "count": len(approvers),
            "sha256": hashlib.sha256(proof.canonical_json(approvers)).hexdigest(),
            "why": "too many to fit the tag; the request's page lists them",
        }
        predicate["content"]["files"] = None
        if len(reason) > SHORT_REASON:
            predicate["decision"]["reason"] = reason[:SHORT_REASON] + "…"
    if emergency := break_glass_of(request):
        predicate["break_glass"] = emergency
    return {
        "_type": proof.STATEMENT_TYPE,
        "subject": [{"name": proof.subject_name(name, number), "digest": {"sha256": files.digest}}],
        "predicateType": proof.PREDICATE_TYPE,
        "predicate": predicate,
    }


def break_glass_of(request: TransitionRequest) -> dict | None:
    """For a break-glass move, whether the quorum ratified it: its own proof says not (yet); the
    ratification's, written when the ratification is carried out, says it was."""
    if request.kind == RequestKind.BREAK_GLASS:
        return {"request": request.pk, "ratified": False, "ratification": None}
    if request.kind == RequestKind.RATIFICATION:
        return {"request": request.ratifies_id, "ratified": True, "ratification": request.pk}
    return None


def signed(statement: dict, key: CryptoSigner) -> str:
    """The DSSE envelope of `statement` signed with `key`, as the tag's JSON text."""
    envelope = Envelope(proof.canonical_json(statement), proof.PAYLOAD_TYPE, {})
    envelope.sign(key)
    return proof.canonical_json(envelope.to_dict()).decode()


def tag_value(request: TransitionRequest, key: CryptoSigner) -> str:
    """The signed proof for `request`, shortened when the full one would not fit the tag."""
    value = signed(statement_of(request), key)
    if len(value.encode()) <= proof.MAX_TAG_BYTES:
        return value
    value = signed(statement_of(request, compact=True), key)
    if len(value.encode()) > proof.MAX_TAG_BYTES:
        raise QuorumError(
            f"The proof is {len(value.encode()):,} bytes even without the approvers' names, over "
            f"the {proof.MAX_TAG_BYTES:,} bytes a tag may take here (a very long gate list?)."
        )
    return value


# -- writing it -----------------------------------------------------------------------------------


def write(request_id: int, *, final: bool = False) -> str:
    """Signs and writes the proof of an executed request to its version in MLflow.

    Records the outcome on the request and in the audit trail; raises after recording a
    failure (`final`: no retry follows, the proof is `failed`). Writing twice is harmless: the
    tag is set again with a fresh signature over the same facts.
    """
    request = (
        TransitionRequest.objects.select_related("version__model", "requester", "decided_by")
        .filter(pk=request_id)
        .first()
    )
    if request is None or request.execution != Execution.DONE:
        return f"request #{request_id} was not carried out: no proof to write"
    tag = proof.tag_for(request.target)
    try:
        key = signer()
        value = tag_value(request, key)
        RegistryClient().set_version_tag(
            request.version.model.name, request.version.version, tag, value
        )
    except Exception as error:
        _record_failure(request_id, error, final=final)
        raise
    keyid = key.public_key.keyid
    with transaction.atomic():
        locked = TransitionRequest.objects.locked(request_id)
        locked.attestation = Attestation.WRITTEN
        locked.attestation_attempts += 1
        locked.attestation_error = ""
        locked.attested_at = timezone.now()
        locked.attestation_key_id = keyid
        locked.save(
            update_fields=[
                "attestation",
                "attestation_attempts",
                "attestation_error",
                "attested_at",
                "attestation_key_id",
            ]
        )
        chain.record(
            "attestation.written",
            request=request,
            details={"tag": tag, "keyid": keyid, "bytes": len(value.encode())},
        )
    return f"proof written as {tag}"


def _record_failure(request_id: int, error: Exception, *, final: bool) -> None:
    message = (
        str(error)
        if isinstance(error, MlflowError | QuorumError)
        else (f"{type(error).__name__}: {error}")
    )
    try:
        with transaction.atomic():
            request = TransitionRequest.objects.locked(request_id)
            request.attestation = Attestation.FAILED if final else Attestation.PENDING
            request.attestation_attempts += 1
            request.attestation_error = message
            request.save(update_fields=["attestation", "attestation_attempts", "attestation_error"])
            chain.record(
                "attestation.failed" if final else "attestation.attempt_failed",
                request=request,
                details={"attempt": request.attestation_attempts, "error": message},
            )
    except Exception:  # the database is what failed: the reconciler finds the proof pending
        logger.exception(
            "request #%s: could not record its proof's failure %r", request_id, message
        )


def write_after_transition(request_id: int) -> None:
    """Called by the transition job once the request is `done`: writes the proof at once, and
    when that fails queues a job that retries it. Never raises: the version moved."""
    try:
        TransitionRequest.objects.filter(pk=request_id).exclude(
            attestation=Attestation.WRITTEN
        ).update(attestation=Attestation.PENDING)
        write(request_id)
    except Exception as error:
        logger.warning("request #%s: proof not written (%s); retrying in a job", request_id, error)
        try:
            enqueue_write(request_id)
        except Exception:  # the database: the proof is pending, the reconciler queues it
            logger.exception("request #%s: could not queue its proof", request_id)


def write_job_id(request: TransitionRequest) -> str:
    return queues.job_id_for("attestation", request)


def enqueue_write(request_id: int, *, replace: bool = False) -> bool:
    """Queues `write_job` once for the request; True if this call queued it. Never raises for
    Redis trouble: the proof stays pending and the reconciler queues it later."""
    request = TransitionRequest.objects.filter(pk=request_id).only("pk", "created_at").first()
    if request is None:
        return False
    return queues.enqueue_once(
        QUEUE,
        write_job,
        request_id,
        job_id=write_job_id(request),
        what=f"the proof of #{request_id}",
        replace=replace,
        retry=retry_policy(),
        description=f"approval proof for request #{request_id}",
    )


def write_job(request_id: int) -> str:
    """The RQ job that retries a proof: the last attempt that fails leaves it `failed`."""
    job = get_current_job()
    return write(request_id, final=job is None or not job.retries_left)


# Longer than the transition job's own attempt at the proof can take (MLflow's client gives up
# after its timeout and two retries).
PENDING_GRACE = timedelta(minutes=2)


def requeue_pending() -> list[int]:
    """Pending proofs whose job Redis no longer has (or that ended without recording why):
    queued again. Called by the reconciler.

    Only requests carried out over PENDING_GRACE ago: a younger one may still be in its
    transition job's own first attempt, which has no job of its own yet.
    """
    pending = list(
        TransitionRequest.objects.filter(
            execution=Execution.DONE,
            attestation=Attestation.PENDING,
            executed_at__lt=timezone.now() - PENDING_GRACE,
        ).only("pk", "created_at")
    )
    if not pending:
        return []
    queue = queues.get_queue(QUEUE)
    requeued = []
    for request in pending:
        try:
            status = Job.fetch(write_job_id(request), connection=queue.connection).get_status()
        except NoSuchJobError:
            status = None
        if status in queues.LIVE_JOB_STATES:
            continue
        if enqueue_write(request.pk, replace=True):
            requeued.append(request.pk)
    return requeued
