"""Open requests decided again when what they were decided on changes.

- After a sync (`review_pending_requests`): pending requests whose evidence changed lose the
  approvals collected so far: the candidate's metrics moved, or the target's holder changed
  (GitHub's "dismiss stale reviews", for models). Their baseline and gates are re-evaluated, and a
  candidate deleted or already moved to its target ends the request.
- When a version's evidence packet arrives (`on_evidence_stored`): the worker reads it after the
  sync mirrors the version (`registry.evidence`), so a request opened before that was sized on
  unknown evidence (`reviews.decisions.escalation`). Each pending request on the version (as
  candidate or as baseline) has its requirements and evidence gates decided again: approvals
  given on other evidence go stale, a failing required evidence gate rejects it, and a quorum the
  new requirements already count approves it.

The registry may not import the engine, so it announces what it saw (`registry.signals`,
`registry.evidence.evidence_stored`) and the engine's receivers call these.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.urls import reverse

from registry.models import ChangeKind, ModelVersion, RegistryChange

from ..audit import chain
from ..models import Decision, RequestKind, TransitionRequest
from . import counting, escalation, gates, pins
from .counting import approvals_mark_stale
from .deciding import decide
from .opening import is_at_target, target_holder


def on_evidence_stored(sender, version_ids: list[int], **kwargs) -> None:
    """Evidence arrived for these versions: decide the open requests on them again."""
    with transaction.atomic():
        pending = (
            TransitionRequest.objects.select_for_update(of=("self",))
            .filter(decision=Decision.PENDING)
            .filter(Q(version_id__in=version_ids) | Q(baseline_id__in=version_ids))
            .select_related("version__model", "baseline")
        )
        for request in pending:
            before = request.policy_snapshot.get("escalation", {})
            results = escalation.refresh(request, request.version, request.baseline)
            metric_results = [
                r for r in request.gate_results if not r["metric"].startswith("evidence: ")
            ]
            request.gate_results = metric_results + [r.as_json() for r in results]
            request.save(update_fields=["policy_snapshot", "gate_results"])
            after = request.policy_snapshot["escalation"]
            if before.get("evidence") != after["evidence"]:
                approvals_mark_stale(
                    request, reason="The evidence packet was read and differs from what was seen."
                )
            if failed := [r for r in results if r.kind == "required" and not r.passed]:
                decide(
                    request,
                    Decision.REJECTED,
                    actor="policy",
                    reason="Required evidence gate failed: " + "; ".join(r.reason for r in failed),
                )
            elif (
                (count := counting.tally(request)).met
                and count.people
                and not pins.unpinned(request)
            ):
                decide(request, Decision.APPROVED, actor="policy", reason=count.reason())


def review_pending_requests(changes: list[RegistryChange]) -> None:
    """The sync observed these changes (`reviews.execution.registry_events`, in the sync's
    transaction): decide the pending requests on their models again."""
    models = {c.model_id for c in changes}
    if not models:
        return
    pending = (
        TransitionRequest.objects.select_for_update(of=("self",))
        .filter(decision=Decision.PENDING, version__model__in=models)
        .select_related("version__model", "baseline")
    )
    metrics_moved = {c.version_id for c in changes if c.kind == ChangeKind.METRICS_CHANGED}
    for request in pending:
        candidate = ModelVersion.objects.select_related("model").get(pk=request.version_id)
        if candidate.deleted:
            decide(
                request,
                Decision.CANCELLED,
                actor="mlflow",
                reason="The version was deleted in MLflow.",
            )
            continue
        if request.kind == RequestKind.RATIFICATION:
            # Its version is at the target by design (moved by breaking glass), and its baseline
            # is the holder the move replaced: the quorum ratifies that move as it was made.
            continue
        if is_at_target(candidate, request.target):
            decide(
                request,
                Decision.CANCELLED,
                actor="mlflow",
                reason=f"The version was moved to {request.target} in MLflow directly.",
            )
            continue
        reasons = []
        cause: dict[str, str] | None = None
        history: dict = {}
        if candidate.pk in metrics_moved:
            # The gated values that moved, with when the new one was logged (MLflow calls: only
            # for a candidate whose metrics moved, one per gated metric).
            pinned = pins.pinned_values(request)
            moved_keys = {k for k, v in pinned.items() if v != candidate.metrics.get(k)}
            history = pins.read_history(candidate, moved_keys)
            moved = pins.metric_change_reasons(pinned, candidate.metrics, history)
            reasons.extend(moved or ["the candidate's metrics changed in MLflow"])
            cause = version_link(candidate)
        holder = target_holder(candidate.model, request.target, exclude=candidate.pk)
        if (holder.pk if holder else None) != request.baseline_id:
            was = f"v{request.baseline.version}" if request.baseline else "nothing"
            now = f"v{holder.version}" if holder else "nothing"
            reasons.append(f"{request.target} is now held by {now} (was {was})")
            cause = move_link(holder, request.target) if holder else cause
        if not reasons:
            continue
        reason = "; ".join(reasons)
        request.baseline = holder
        request.candidate_metrics = candidate.metrics
        request.baseline_metrics = holder.metrics if holder else None
        gates_spec = request.policy_snapshot.get("gates", [])
        results = gates.evaluate(gates_spec, request.candidate_metrics, request.baseline_metrics)
        unread = pins.auto_approve_metrics(results) - history.keys()
        history.update(pins.read_history(candidate, unread))
        results = pins.hold_auto_approval(results, history)
        results += escalation.refresh(request, candidate, holder)
        request.gate_results = [r.as_json() for r in results]
        request.metric_pins = pins.metric_pins(
            gates_spec, request.candidate_metrics, request.baseline_metrics, history
        )
        request.save(
            update_fields=[
                *("baseline", "candidate_metrics", "baseline_metrics", "gate_results"),
                "policy_snapshot",  # the requirements, decided again on the new evidence
                "metric_pins",
            ]
        )
        # The request page's gates section and timeline say when and why they were re-evaluated.
        chain.record(
            "request.reevaluated",
            actor="system",
            request=request,
            details={
                "reason": reason,
                "baseline": holder.version if holder else None,
                "gates": request.gate_results,
            },
        )
        # A metric's name keeps its case; the generic reasons start a sentence.
        said = reason[0].upper() + reason[1:] if reason.startswith("the ") else reason
        approvals_mark_stale(request, reason=said + ".", cause=cause)
        if failed := gates.required_failures(results):
            decide(
                request,
                Decision.REJECTED,
                actor="policy",
                reason="Required gate failed after the evidence changed: "
                + "; ".join(r.reason for r in failed),
            )


def version_link(version: ModelVersion) -> dict[str, str]:
    """A link to a version's page (its metrics, their history, its holdings)."""
    return {
        "label": f"{version.model.name} v{version.version}",
        "url": reverse("registry:version_detail", args=[version.model.name, version.version]),
    }


def move_link(holder: ModelVersion, target: str) -> dict[str, str]:
    """A link to what put `holder` at `target`: the request Quorum carried out (a promotion, a
    rollback, break glass), or, when it was moved some other way, the version's page, whose
    holdings say when."""
    # The request whose move of this version the mirror saw (`classify` credits it).
    carried_out = (
        TransitionRequest.objects.filter(
            version=holder, target=target, caused_changes__version=holder
        )
        .order_by("-pk")
        .first()
    )
    if carried_out is None:
        return version_link(holder)
    return {
        "label": f"request #{carried_out.pk}",
        "url": reverse("reviews:request_detail", args=[carried_out.pk]),
    }
