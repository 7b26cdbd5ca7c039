"""What a request pins: the content digest of the version it asks about and the metric values its
gates read ("approve the bytes, not the name").

- At creation the request records the version's content digest (`registry.content`, read by the
  digest job after the sync) and each gated metric's value; every vote records the digest it saw.
- When the content changes while the request is open (its source was read again, or a recheck
  reads other bytes than the pinned ones, `recheck_open`), approvals go stale with the files that
  changed, the new digest is pinned, and the approvers are asked to review again.
- When a gated metric changes (`reviews.decisions.reevaluation`), approvals go stale with the
  old and new values and when the new one was logged; the gates are evaluated again.
- An auto-approve gate never fires on a value logged again after the version was registered
  (`registry.provenance`), nor on one whose history cannot be read: people sign off instead, and
  the gate's reason and the page say why.
- The digest unknown at creation: the safe behaviour. The request pins it when the digest job
  stores it (`on_content_stored`), and approvals given before go stale: nobody approved bytes
  Quorum had not read, so each approver confirms the digest now pinned. A version whose files
  cannot be read pins nothing, and its transition is refused (`reviews.execution.content_check`).
"""

from __future__ import annotations

import dataclasses
import logging

from django.db import transaction

from quorum_cli.manifest import Manifest, compare
from registry import content as registry_content
from registry import metrics, provenance
from registry.mlflow_client import RegistryClient
from registry.models import ModelVersion

from ..audit import chain
from ..models import Decision, TransitionRequest
from . import gates
from .counting import approvals_mark_stale
from .deciding import decide
from .gates import GateResult

logger = logging.getLogger(__name__)


def short(digest: str) -> str:
    """A digest as reasons and pages write it: "sha256 ab12cd34ef56…"; "unknown" for none."""
    return f"sha256 {digest[:12]}…" if digest else "unknown"


def content_pin(version: ModelVersion) -> str:
    """The digest a request on `version` pins now: the stored one when known, else ""."""
    return registry_content.known_digest(version)


def unpinned(request: TransitionRequest) -> str:
    """Why `request` may not be approved yet for want of a pinned digest; "" once it has one."""
    if request.content_digest:
        return ""
    stored = registry_content.content_of(request.version)
    if stored is not None and not stored.known:
        return f"The model files could not be read, so nothing can be approved: {stored.reason}"
    return (
        "The content digest is not known yet: the request is decided once it is pinned, "
        "and approvals given before are asked again."
    )


# -- metrics ---------------------------------------------------------------------------------


def auto_approve_metrics(results: list[GateResult]) -> set[str]:
    """The metrics of auto-approve gates that passed: the ones whose history must be read."""
    return {r.metric for r in results if r.kind == "auto_approve" and r.passed}


def hold_auto_approval(
    results: list[GateResult], history: dict[str, provenance.Provenance]
) -> list[GateResult]:
    """`results` with every passing auto-approve gate on an untrusted value (replaced after
    registration, or its history unknown) turned into "needs sign-off", saying why."""
    held = []
    for result in results:
        found = history.get(result.metric)
        if result.kind == "auto_approve" and result.passed and (found is None or not found.trusted):
            why = found.words() if found is not None else f"the history of {result.metric} unread"
            result = dataclasses.replace(result, passed=False, reason=f"{result.reason}; {why}")
        held.append(result)
    return held


def metric_pins(
    gates: list[dict],
    candidate: dict,
    baseline: dict | None,
    history: dict[str, provenance.Provenance],
) -> dict:
    """The values the gates read, as the request keeps them: the candidate's (with its history
    where it was read) and, for gates relative to the holder, the baseline's."""
    pins: dict = {"candidate": {}, "baseline": {}}
    for gate in gates:
        key = gate["metric"]
        pinned = {"value": candidate.get(key)}
        if key in history:
            pinned.update(history[key].as_json())
        pins["candidate"][key] = pinned
        if gate.get("baseline_delta") is not None and baseline is not None:
            pins["baseline"][key] = baseline.get(key)
    return metrics.encode_json(pins)


def read_history(
    version: ModelVersion, keys: set[str], *, client: RegistryClient | None = None
) -> dict[str, provenance.Provenance]:
    return provenance.read(version, keys, client=client) if keys else {}


def pinned_values(request: TransitionRequest) -> dict:
    """The candidate's gated values as the request pinned them (a request opened before pins
    existed: the metrics it was opened with)."""
    pinned = (request.metric_pins or {}).get("candidate") or {}
    gated = {gate["metric"] for gate in request.policy_snapshot.get("gates", [])}
    return {
        key: (pinned[key] or {}).get("value")
        if key in pinned
        else (request.candidate_metrics or {}).get(key)
        for key in sorted(gated)
    }


def metric_change_reasons(
    pinned: dict, fresh: dict, history: dict[str, provenance.Provenance]
) -> list[str]:
    """How each gated candidate metric moved since it was pinned: "accuracy changed from 0.9000
    to 0.9950, logged at step 100000 on 2026-12-06 10:31 UTC"."""
    reasons = []
    for key, old in pinned.items():
        new = fresh.get(key)
        if old == new:
            continue
        said = f"{key} changed from {metrics.format_value(old)} to {metrics.format_value(new)}"
        latest = history[key].latest if key in history else None
        if latest is not None:
            at = latest[2] if len(latest) > 2 else None
            said += f", logged at step {latest[0]} on {provenance.logged_at(at)}"
        reasons.append(said)
    return reasons


# -- content ---------------------------------------------------------------------------------


def file_reasons(
    before: Manifest | None,
    after: Manifest | None,
    old: str,
    new: str,
    *,
    when: str = "after you approved",
) -> str:
    """What changed between two contents, file by file when both manifests are at hand:
    "model.pkl changed after you approved: sha256 ab12… → 9f3c…"."""
    if before is not None and after is not None:
        said = []
        for difference in compare(before, after):
            was = short(difference.expected.sha256) if difference.expected else "absent"
            now = short(difference.actual.sha256) if difference.actual else "absent"
            said.append(f"{difference.path} {difference.kind} {when}: {was} → {now}")
        if said:
            return "; ".join(said) + "."
    return f"The model files changed {when}: {short(old)} → {short(new)}."


def repin(request: TransitionRequest, digest: str, *, reason: str) -> None:
    """Pins `digest` on a locked pending request and makes the approvals given so far stale."""
    previous = request.content_digest
    request.content_digest = digest
    request.save(update_fields=["content_digest"])
    chain.record(
        "request.content_pinned",
        actor="system",
        request=request,
        details={"digest": digest, "previous": previous, "reason": reason},
    )
    approvals_mark_stale(request, reason=reason)


def on_content_stored(sender, version_ids: list[int], **kwargs) -> None:
    """The digest job stored these versions' content: pending requests on them pin it."""
    with transaction.atomic():
        pending = (
            TransitionRequest.objects.select_for_update(of=("self",))
            .filter(decision=Decision.PENDING, version_id__in=version_ids)
            .select_related("version__model", "version__content", "requester")
        )
        for request in pending:
            stored = registry_content.content_of(request.version)
            digest = stored.digest if stored is not None and stored.known else ""
            if digest == request.content_digest:
                continue
            if not request.content_digest:
                reason = (
                    f"The content digest became known after you approved: {short(digest)}. "
                    "Approve again to approve these bytes."
                )
            elif not digest:
                reason = "The model files can no longer be read: " + (
                    stored.reason if stored is not None else "unknown"
                )
            else:
                was = short(request.content_digest)
                reason = f"The model files changed: {was} → {short(digest)}."
            repin(request, digest, reason=reason)
            if digest and gates.auto_approves_stored(request.gate_results):
                decide(
                    request,
                    Decision.APPROVED,
                    actor="policy",
                    reason=f"Every auto-approve gate passed, and {short(digest)} is pinned: "
                    + "; ".join(
                        r["reason"] for r in request.gate_results if r["kind"] == "auto_approve"
                    ),
                )


def recheck_open(*, client: RegistryClient | None = None) -> int:
    """Reads afresh the content of every pending request's version and, where the bytes are no
    longer the pinned ones, makes its approvals stale naming the files and pins the new digest;
    returns how many requests it repinned. MLflow unreachable stops the run (raises)."""
    client = client or RegistryClient()
    repinned = 0
    pending = (
        TransitionRequest.objects.filter(decision=Decision.PENDING)
        .exclude(content_digest="")
        .select_related("version__model", "version__content")
    )
    for request in pending:
        fresh = registry_content.read_content(request.version, client=client)
        stored = registry_content.content_of(request.version)
        before = (
            Manifest.from_json(stored.files)
            if stored is not None and stored.digest == request.content_digest
            else None
        )
        if fresh.digest == request.content_digest:
            continue
        if fresh.manifest is None:
            reason = f"The model files can no longer be read: {fresh.reason}"
        else:
            reason = file_reasons(before, fresh.manifest, request.content_digest, fresh.digest)
        with transaction.atomic():
            locked = TransitionRequest.objects.locked(request.pk)
            if locked.decision != Decision.PENDING or locked.content_digest != (
                request.content_digest
            ):
                continue
            repin(locked, fresh.digest, reason=reason)
            repinned += 1
    return repinned
