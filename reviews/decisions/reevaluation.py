"""Open requests decided again when their evidence packet arrives.

The worker reads a version's evidence after the sync mirrors it (`registry.evidence`), so a
request opened before that was sized on unknown evidence (`reviews.decisions.escalation`). When
the evidence is stored (`registry.evidence.evidence_stored`), each pending request on the version
(as candidate or as baseline) has its requirements and evidence gates decided again: approvals
given on other evidence go stale, a failing required evidence gate rejects it, and a quorum the
new requirements already count approves it.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from ..models import Decision, TransitionRequest
from . import counting, escalation, pins
from .counting import approvals_mark_stale
from .deciding import decide


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
