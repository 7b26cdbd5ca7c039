"""The worker moves only what was approved.

Right before a transition moves a version, its job reads the version's files from MLflow afresh
(`registry.content.read_content`, not the mirrored digest) and compares their digest with the one
the request pinned (`reviews.decisions.pins`). On a difference, when the files cannot be read, or
when the request pinned no digest, nothing moves: the request fails with the reason (the
`transition.failed` event, so its requester and staff are mailed as for any failed transition),
and its approvals go stale, since they were given for other bytes. MLflow being unreachable is
no refusal: it raises, and the job is retried like any MLflow error.
"""

from __future__ import annotations

from quorum_cli.manifest import Manifest
from registry import content as registry_content
from registry.mlflow_client import RegistryClient

from ..decisions import pins
from ..models import TransitionRequest


def refusal(request: TransitionRequest, client: RegistryClient) -> str:
    """Why `request`'s version may not be moved now, or "" when its files are the approved
    ones. Raises `MlflowError` when MLflow does not answer."""
    version = request.version
    what = f"{version.model.name} version {version.version}"
    pinned = request.content_digest
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
