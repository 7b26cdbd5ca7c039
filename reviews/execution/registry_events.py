"""What the review engine concludes from changes the registry sync observed.

- A stage or alias move is credited to the Quorum transition that made it (the request is marked
  `running` before the job touches MLflow, so whichever sync sees the move can tell), or to the
  revert of an out-of-band move that made it (`reviews.execution.reverts`), or else recorded as
  out-of-band: someone changed MLflow directly. An out-of-band move of a target whose policy says
  `out_of_band: revert` is then undone by a worker.
- Pending requests whose evidence changed lose the approvals collected so far: the candidate's
  metrics moved, or the target's holder changed (GitHub's "dismiss stale reviews", for models).
  Their baseline and gates are re-evaluated, and a candidate deleted or already moved to its
  target ends the request.

Runs inside the sync's transaction (the `changes_observed` signal), and from the reconciler for
anything left unclassified.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from registry.models import (
    TRANSITION_KINDS,
    ChangeKind,
    ChangeOrigin,
    ModelVersion,
    RegistryChange,
    Stage,
)

from ..audit import chain
from ..decisions import escalation, gates, pins
from ..decisions.deciding import decide
from ..decisions.opening import is_at_target, target_holder
from ..decisions.voting import approvals_mark_stale
from ..models import Decision, Execution, RequestKind, TransitionRequest
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
    _review_pending_requests(changes)


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


def _review_pending_requests(changes: list[RegistryChange]) -> None:
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
