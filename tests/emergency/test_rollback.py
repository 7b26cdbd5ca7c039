"""Rollback requests: the previous holder put back through a real MLflow and a real worker,
decided by the policy's `rollback:` section (or its normal rules without one); the model page's
button and its permission matrix; the API; refusals that change nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from registry.models import RegisteredModel
from reviews.api.auth import token_create
from reviews.decisions import opening
from reviews.emergency.rollback import rollback_request_create
from reviews.errors import NothingToRollBack
from reviews.insight.holder_history import holder_history
from reviews.models import Decision, Execution, RequestKind, TransitionRequest
from reviews.policies.loading import policies_load
from tests.factories import approve_all
from tests.policy_files import STANDARD_POLICIES, policies_with

pytestmark = pytest.mark.django_db

ROLLBACK_RULES = policies_with(rollback=True)


@pytest.fixture
def replaced(approved, promoted, transitions, syncs, simple_worker):
    """v1 held Production; a Quorum request (returned) replaced it with v3, archiving v1."""
    request = approved(3, "Production")
    simple_worker(transitions, syncs)
    return request


def test_rollback_puts_the_previous_holder_back_and_archives_the_one_it_replaces(
    replaced,
    promoted,
    mlflow_client,
    requester,
    lead,
    transitions,
    syncs,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    policies_load(text=ROLLBACK_RULES)
    rollback = rollback_request_create(model=promoted, target="Production", requester=requester)
    assert (rollback.kind, rollback.version.version) == (RequestKind.ROLLBACK, 1)
    assert rollback.undoes_id == replaced.pk and rollback.baseline.version == 3
    # The policy's rollback rules: one ml-lead, no gates (v1 was approved before).
    assert rollback.policy_snapshot["require"] == [{"group": "ml-leads", "approvals": 1}]
    assert rollback.gate_results == []

    approve_all(rollback, lead, capture=django_capture_on_commit_callbacks)
    simple_worker(transitions, syncs)

    assert mlflow_client.get_version(promoted, 1).stage == "Production"
    assert mlflow_client.get_version(promoted, 3).stage == "Archived"  # archive_existing
    rollback.refresh_from_db()
    assert (rollback.decision, rollback.execution) == (Decision.APPROVED, Execution.DONE)
    history = holder_history(RegisteredModel.objects.get(name=promoted))
    latest = history.of("Production")[-1]
    assert (latest.holding.version, latest.began.kind) == (1, "rollback")
    assert latest.began.request_id == rollback.pk and latest.began.approvers == ["lead"]


def test_without_a_rollback_section_the_normal_rules_decide(replaced, promoted, requester):
    rollback = rollback_request_create(model=promoted, target="Production", requester=requester)
    assert rollback.policy_snapshot["require"] == [
        {"group": "ml-leads", "approvals": 1},
        {"group": "data-science", "approvals": 2},
    ]
    assert [g["metric"] for g in rollback.gate_results] == ["accuracy", "f1"]
    # v1's f1 is below v3's by more than the gate allows: the normal rules reject it at once.
    assert rollback.decision == Decision.REJECTED


def test_rollback_refuses_versions_that_never_held_the_target_and_the_holder(
    replaced, promoted, requester
):
    with pytest.raises(NothingToRollBack, match="v2 has not held Production"):
        rollback_request_create(
            model=promoted, target="Production", requester=requester, to_version=2
        )
    with pytest.raises(NothingToRollBack, match="v3 holds Production now"):
        rollback_request_create(
            model=promoted, target="Production", requester=requester, to_version=3
        )
    with pytest.raises(NothingToRollBack, match="Nothing to roll back to"):
        rollback_request_create(model=promoted, target="@champion", requester=requester)
    assert not TransitionRequest.objects.filter(kind=RequestKind.ROLLBACK).exists()


def test_model_page_offers_the_rollback_and_the_button_opens_it(
    replaced, promoted, requester, client
):
    client.force_login(requester)
    page = client.get(reverse("registry:model_detail", args=[promoted]))
    html = page.content.decode()
    assert "Roll back Production to v1 (held it until" in html
    assert f"replaced by v3 in #{replaced.pk})" in html

    response = client.post(
        reverse("reviews:rollback", args=[promoted]), {"target": "Production", "version": "1"}
    )
    rollback = TransitionRequest.objects.get(kind=RequestKind.ROLLBACK)
    assert response.status_code == 302
    assert response.url == reverse("reviews:request_detail", args=[rollback.pk])
    detail = client.get(response.url).content.decode()
    assert "Puts <a" in detail and f'undoing <a href="/reviews/{replaced.pk}/">' in detail


def test_rollback_view_refuses_get_anonymous_and_nothing_to_roll_back(
    replaced, promoted, requester, client
):
    url = reverse("reviews:rollback", args=[promoted])
    assert client.get(url).status_code == 405
    anonymous = client.post(url, {"target": "Production"})
    assert anonymous.status_code == 302 and "/login" in anonymous.url
    client.force_login(requester)
    assert client.get(url).status_code == 405
    refused = client.post(url, {"target": "Production", "version": "2"}, follow=True)
    assert "v2 has not held Production" in refused.content.decode()
    bad = client.post(url, {"target": "Prod"}, follow=True)
    assert "is not a stage" in bad.content.decode()
    assert not TransitionRequest.objects.filter(kind=RequestKind.ROLLBACK).exists()


def test_rollback_api_opens_the_request_and_refuses_with_codes(
    replaced, promoted, requester, client
):
    policies_load(text=ROLLBACK_RULES)
    headers = {"Authorization": f"Bearer {token_create(user=requester, name='t')[1]}"}
    made = client.post(
        "/api/v1/rollbacks",
        {"model": promoted, "target": "Production"},
        content_type="application/json",
        headers=headers,
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["kind"], body["version"], body["undoes"]) == ("rollback", 1, replaced.pk)
    again = client.post(
        "/api/v1/rollbacks",
        {"model": promoted, "target": "Production"},
        content_type="application/json",
        headers=headers,
    )
    assert again.status_code == 409 and again.json()["error"] == "duplicate_request"
    never = client.post(
        "/api/v1/rollbacks",
        {"model": promoted, "target": "Production", "to_version": 2},
        content_type="application/json",
        headers=headers,
    )
    assert never.status_code == 409 and never.json()["error"] == "nothing_to_roll_back"
    unknown = client.post(
        "/api/v1/rollbacks",
        {"model": "nope", "target": "Production"},
        content_type="application/json",
        headers=headers,
    )
    assert unknown.status_code == 404
    assert TransitionRequest.objects.filter(kind=RequestKind.ROLLBACK).count() == 1


def test_a_rollback_section_naming_an_unknown_group_is_refused_with_its_place(policies):
    from reviews.errors import PolicyInvalid

    bad = STANDARD_POLICIES.replace(
        "    archive_existing: true\n",
        "    archive_existing: true\n"
        "    rollback: {require: [{group: on-call, approvals: 1}], gates: maybe}\n",
    )
    with pytest.raises(PolicyInvalid) as refused:
        policies_load(text=bad)
    text = str(refused.value)
    assert "policies[0].rollback.gates" in text
    fixed = bad.replace(", gates: maybe", "")
    with pytest.raises(PolicyInvalid) as refused:
        policies_load(text=fixed)
    assert "policies[0].rollback.require[0].group: unknown group 'on-call'" in str(refused.value)


def test_policy_export_keeps_the_rollback_section(policies):
    from reviews.policies.loading import policies_export

    policies_load(text=ROLLBACK_RULES)
    exported = policies_export()
    assert "rollback:" in exported
    assert policies_load(text=exported).changed_anything is False


def test_services_request_create_still_makes_promotions(promoted, requester):
    request = opening.request_create(
        model=promoted, version=2, target="Production", requester=requester
    )
    assert request.kind == RequestKind.PROMOTION and request.undoes is None
