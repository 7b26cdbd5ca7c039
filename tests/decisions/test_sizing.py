"""Sizing a request (`reviews.decisions.sizing`) through a real MLflow and a real worker: a move out
of a protected target needs that target's sign-offs; an escalation always needs people; a
rollback is decided by the policy's rollback rules, never by escalations or auto-approve gates
unless `rollback:` says so; and the button, the API and the CLI say what it will take from the
same function the request is sized with."""

from __future__ import annotations

import pytest
from django.urls import reverse

from reviews.api.auth import token_create
from reviews.decisions import deciding, opening
from reviews.emergency.break_glass import break_glass_move
from reviews.emergency.rollback import rollback_preview, rollback_request_create
from reviews.errors import PolicyInvalid
from reviews.models import Decision, RequestKind, TransitionRequest
from reviews.policies.loading import policies_load
from tests.policy_files import policies_with

pytestmark = pytest.mark.django_db

PRODUCTION_NEEDS = [
    {"group": "ml-leads", "approvals": 1},
    {"group": "data-science", "approvals": 2},
]


def with_production(text: str, extra: str) -> str:
    return text.replace("    archive_existing: true\n", "    archive_existing: true\n" + extra, 1)


def with_staging(text: str, extra: str) -> str:
    return text.replace("    targets: [Staging]\n", "    targets: [Staging]\n" + extra, 1)


# Staging approves itself when accuracy passes 0.80 (every version of `promoted` does), and a
# version promoted there archives the one it replaces.
EASY_STAGING = with_staging(
    policies_with(break_glass="ratify_within: 1h, on_unratified: alert").replace(
        'op: ">", value: 0.97, kind: auto_approve', 'op: ">", value: 0.80, kind: auto_approve'
    ),
    "    archive_existing: true\n",
)
# Evidence no worker has read is unknown, so an escalation rule applies (the safe side).
ESCALATING = (
    "    escalate: [{when: requirements_changed, require: [{group: data-science, approvals: 3}]}]\n"
)


def run(simple_worker, transitions, syncs):
    simple_worker(transitions, syncs)


def test_rolling_staging_back_to_the_production_holder_needs_production_approvers(
    promoted, requester, outsider, mlflow_client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """Scenario 1: v2 held Staging, broke glass into Production; v3 went to Staging on its gate;
    rolling Staging back to v2 would empty Production: Production's approvers must sign."""
    policies_load(text=EASY_STAGING)
    with django_capture_on_commit_callbacks(execute=True):
        staged = opening.request_create(
            model=promoted, version=2, target="Staging", requester=requester
        )
    assert staged.decision == Decision.APPROVED  # its gate: nothing else is at stake
    run(simple_worker, transitions, syncs)
    with django_capture_on_commit_callbacks(execute=True):
        break_glass_move(
            model=promoted, version=2, target="Production", user=outsider, reason="INC-1"
        )
    run(simple_worker, transitions, syncs)
    with django_capture_on_commit_callbacks(execute=True):
        opening.request_create(model=promoted, version=3, target="Staging", requester=requester)
    run(simple_worker, transitions, syncs)
    assert mlflow_client.get_version(promoted, 2).stage == "Production"
    assert mlflow_client.get_version(promoted, 3).stage == "Staging"

    preview = rollback_preview(model=promoted, target="Staging")
    assert preview.version == 2 and preview.sizing.leaves["target"] == "Production"
    with django_capture_on_commit_callbacks(execute=True):
        rollback = rollback_request_create(model=promoted, target="Staging", requester=requester)
    run(simple_worker, transitions, syncs)

    rollback.refresh_from_db()
    assert rollback.decision == Decision.PENDING  # no gate approves it: people must
    by_group = sorted(rollback.policy_snapshot["require"], key=lambda r: r["group"])
    assert by_group == sorted(PRODUCTION_NEEDS, key=lambda r: r["group"])
    assert rollback.policy_snapshot["require"] == preview.sizing.require
    assert mlflow_client.get_version(promoted, 2).stage == "Production"


def test_the_rollback_button_says_what_the_rollback_will_take(
    promoted, requester, outsider, client, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    policies_load(text=EASY_STAGING)
    for version in (2, 3):
        with django_capture_on_commit_callbacks(execute=True):
            opening.request_create(
                model=promoted, version=version, target="Staging", requester=requester
            )
        run(simple_worker, transitions, syncs)
    client.force_login(requester)
    html = client.get(reverse("registry:model_detail", args=[promoted])).content.decode()
    # v2 is back at no target: its rollback asks what the staging policy asks, gates aside.
    assert "Roll back Staging to v2" in html
    assert "rollback rules: needs 1 of data-science." in html


def test_an_escalation_always_needs_people(promoted, requester):
    """An auto-approve gate that passes approves nothing an escalation applies to."""
    lead_too = ESCALATING.replace("data-science, approvals: 3", "ml-leads, approvals: 1")
    policies_load(text=with_staging(EASY_STAGING, lead_too))
    request = opening.request_create(
        model=promoted, version=2, target="Staging", requester=requester
    )
    assert request.gate_results[0]["passed"] is True
    assert request.decision == Decision.PENDING
    assert {"group": "ml-leads", "approvals": 1} in request.policy_snapshot["require"]

    policies_load(text=EASY_STAGING)
    plain = opening.request_create(model=promoted, version=3, target="Staging", requester=requester)
    assert plain.decision == Decision.APPROVED


def test_a_rollback_is_sized_by_its_rules_not_by_escalations(
    promoted, approved, requester, transitions, syncs, simple_worker
):
    """Scenario 4: the production policy escalates, its rollback rules ask 1 of ml-leads."""
    approved(3, "Production")
    run(simple_worker, transitions, syncs)
    rules = "    rollback: {require: [{group: ml-leads, approvals: 1}]}\n"
    policies_load(text=with_production(policies_with(), ESCALATING + rules))
    promotion = opening.request_create(
        model=promoted, version=2, target="Production", requester=requester
    )
    assert {"group": "data-science", "approvals": 3} in promotion.policy_snapshot["require"]

    preview = rollback_preview(model=promoted, target="Production")
    rollback = rollback_request_create(model=promoted, target="Production", requester=requester)
    assert rollback.policy_snapshot["require"] == [{"group": "ml-leads", "approvals": 1}]
    assert preview.sizing.words == "needs 1 of ml-leads"
    assert rollback.policy_snapshot["escalation"]["applied"] == []


def test_rollback_escalate_true_lets_escalations_apply(
    promoted, approved, requester, transitions, syncs, simple_worker
):
    approved(3, "Production")
    run(simple_worker, transitions, syncs)
    rules = "    rollback: {require: [{group: ml-leads, approvals: 1}], escalate: true}\n"
    policies_load(text=with_production(policies_with(), ESCALATING + rules))
    preview = rollback_preview(model=promoted, target="Production")
    rollback = rollback_request_create(model=promoted, target="Production", requester=requester)
    assert rollback.policy_snapshot["require"] == [
        {"group": "ml-leads", "approvals": 1},
        {"group": "data-science", "approvals": 3},
    ]
    # The preview says why before anyone commits, from the rules the request then applied.
    (applied,) = rollback.policy_snapshot["escalation"]["applied"]
    assert preview.sizing.words == (
        f"needs 1 of ml-leads and 3 of data-science (raised because {applied['reason']})"
    )
    assert applied["reason"]  # here "unknown, so the rule applies: ..." (no evidence read)


def test_a_rollback_without_rules_keeps_require_and_is_never_auto_approved(
    promoted, requester, transitions, syncs, simple_worker, django_capture_on_commit_callbacks
):
    policies_load(text=EASY_STAGING)
    for version in (2, 3):
        with django_capture_on_commit_callbacks(execute=True):
            opening.request_create(
                model=promoted, version=version, target="Staging", requester=requester
            )
        run(simple_worker, transitions, syncs)
    rollback = rollback_request_create(model=promoted, target="Staging", requester=requester)
    assert rollback.kind == RequestKind.ROLLBACK and rollback.version.version == 2
    assert rollback.decision == Decision.PENDING
    assert rollback.gate_results == []  # its only gate was an auto-approve one

    policies_load(text=with_staging(EASY_STAGING, "    rollback: {gates: true}\n"))
    deciding.request_cancel(request_id=rollback.pk, user=requester)
    again = rollback_request_create(model=promoted, target="Staging", requester=requester)
    assert again.decision == Decision.APPROVED  # `gates: true` said so


def test_rollback_keys_are_validated_with_their_place(policies):
    bad = with_production(policies_with(), "    rollback: {escalate: sometimes}\n")
    with pytest.raises(PolicyInvalid) as refused:
        policies_load(text=bad)
    assert "policies[0].rollback.escalate" in str(refused.value)
    bad = with_production(policies_with(), "    rollback: {require: []}\n")
    with pytest.raises(PolicyInvalid) as refused:
        policies_load(text=bad)
    assert "policies[0].rollback.require" in str(refused.value)


def test_the_api_previews_the_rollback_and_changes_nothing(
    promoted, approved, requester, client, transitions, syncs, simple_worker
):
    approved(3, "Production")
    run(simple_worker, transitions, syncs)
    policies_load(text=policies_with(rollback=True))
    headers = {"Authorization": f"Bearer {token_create(user=requester, name='t')[1]}"}
    answer = client.get(
        "/api/v1/rollbacks/preview", {"model": promoted, "target": "Production"}, headers=headers
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["version"], body["needs"], body["decided_at_once"]) == (
        1,
        "needs 1 of ml-leads",
        None,
    )
    assert body["requirements"] == [{"group": "ml-leads", "approvals": 1}]
    never = client.get(
        "/api/v1/rollbacks/preview",
        {"model": promoted, "target": "Production", "to_version": "2"},
        headers=headers,
    )
    assert never.status_code == 409 and never.json()["error"] == "nothing_to_roll_back"
    anonymous = client.get("/api/v1/rollbacks/preview", {"model": promoted, "target": "Production"})
    assert anonymous.status_code == 401
    assert not TransitionRequest.objects.filter(kind=RequestKind.ROLLBACK).exists()
