"""The worker moves only what was approved.

Right before a transition moves a version, its job reads the version's files from MLflow afresh
(`registry.content.read_content`, not the mirrored digest) and compares their digest with the one
the request pinned (`reviews.decisions.pins`). On a difference, when the files cannot be read, or
when the request pinned no digest, nothing moves (except a break-glass move: it moves at once
even before the digest job read the version, so its job reads the digest now and pins it, and
the proof and the ratification name those bytes; files it cannot read pin nothing, and it moves
with its proof refused): the request fails with the reason (the
`transition.failed` event, so its requester and staff are mailed as for any failed transition),
and its approvals go stale, since they were given for other bytes. MLflow being unreachable is
no refusal: it raises, and the job is retried like any MLflow error.
"""

from __future__ import annotations

from django.db import transaction

from quorum_cli.manifest import Manifest
from registry import content as registry_content
from registry.mlflow_client import RegistryClient

from ..audit import chain
from ..decisions import pins
from ..models import RequestKind, TransitionRequest


def refusal(request: TransitionRequest, client: RegistryClient) -> str:
    """Why `request`'s version may not be moved now, or "" when its files are the approved
    ones. Raises `MlflowError` when MLflow does not answer."""
    version = request.version
    what = f"{version.model.name} version {version.version}"
    pinned = request.content_digest
    if not pinned and request.kind == RequestKind.BREAK_GLASS:
        return _pin_at_move(request, client)
    if not pinned:
        return (
            f"Nothing was moved: request #{request.pk} pinned no content digest, so no approval "
            f"names the bytes of {what}."
        )
    fresh = registry_content.read_content(version, client=client)
    if fresh.manifest is None:
        return (
            f"Nothing was moved: the content digest of {what} cannot be computed now "
            f"({fresh.reason}); the approved one is {pins.short(pinned)}."
        )
    if fresh.digest == pinned:
        return ""
    stored = registry_content.content_of(version)
    before = (
        Manifest.from_json(stored.files) if stored is not None and stored.digest == pinned else None
    )
    return (
        f"Nothing was moved: the files of {what} are not the approved ones. "
        + pins.file_reasons(before, fresh.manifest, pinned, fresh.digest, when="after approval")
    )


def _pin_at_move(request: TransitionRequest, client: RegistryClient) -> str:
    """A break-glass move with no digest pinned yet: pins the digest read now (what moves is
    what its proof and ratification name); files that cannot be read pin nothing and the move
    goes ahead, its proof refused by `attestation` for want of known content."""
    fresh = registry_content.read_content(request.version, client=client)
    if fresh.manifest is None:
        # Break glass moves at once all the same; only its proof is refused (it names bytes).
        return ""
    with transaction.atomic():
        TransitionRequest.objects.filter(pk=request.pk).update(content_digest=fresh.digest)
        request.content_digest = fresh.digest
        chain.record(
            "request.content_pinned",
            actor="system",
            request=request,
            details={"digest": fresh.digest, "previous": "", "reason": "read as break glass moved"},
        )
    return ""
