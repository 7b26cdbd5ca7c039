"""Approvals that scale with the risk: escalations, the no-change fast path and evidence gates
decide what a request needs, and the request page says which rule applied and why."""

from __future__ import annotations

import textwrap

import pytest
from django.contrib.auth.models import User

from registry import evidence
from registry.models import ModelVersion, RegisteredModel, Stage, VersionEvidence
from reviews.decisions import counting, opening, voting
from reviews.decisions.reevaluation import on_evidence_stored
from reviews.errors import PolicyInvalid
from reviews.models import Decision, TransitionRequest, Vote
from reviews.policies.loading import policies_export, policies_load
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db

POLICIES = textwrap.dedent(
    """
    groups:
      ml-leads: [lead]
      data-science: [scientist1, scientist2, scientist3]
      platform: [outsider]
    policies:
      - name: production
        models: ["*"]
        targets: [Production]
        require: [{group: data-science, approvals: 2}]
        escalate:
          - {when: signature_breaking, require: [{group: platform, approvals: 1}]}
          - {when: requirements_changed, require: [{group: ml-leads, approvals: 1}]}
          - {when: dataset_changed, require: [{group: data-science, approvals: 3}]}
          - {when: no_change, tolerance: 0.01, require: [{group: data-science, approvals: 1}]}
    """
)

EVIDENCE_GATE = (
    "    evidence_gates: [{evidence: signature_breaking, equals: false, kind: required}]\n"
)
SIGNATURE = {
    "inputs": [
        {"name": "age", "type": "long", "required": True, "shape": None},
        {"name": "income", "type": "long", "required": True, "shape": None},
    ],
    "outputs": [],
    "params": [],
}
REQUIREMENTS = ["mlflow==3.17.2", "scikit-learn==1.9.1"]
DATASETS = [{"name": "holdout", "digest": "abc123", "source_type": "code", "context": "evaluation"}]


def with_evidence(version: ModelVersion, **parts) -> VersionEvidence:
    """Stores `version`'s evidence as the worker would: the defaults, changed by `parts`."""
    fields = {
        "signature": SIGNATURE,
        "python_version": "3.11.7",
        "requirements": REQUIREMENTS,
        "flavors": ["python_function", "sklearn"],
        "size_bytes": 2000,
        "datasets": DATASETS,
        "dataset_metrics": {},
        "problems": {},
        **parts,
    }
    return VersionEvidence.objects.create(
        version=version,
        status="unreadable" if fields["problems"] else "read",
        digest=evidence.digest_of(fields),
        **fields,
    )


@pytest.fixture
def people(cast):
    policies_load(text=POLICIES)
    return cast


@pytest.fixture
def pair(people):
    """A model whose v1 is in Production (evidence read) and whose v2 is the candidate."""
    model = make_model("churn")
    holder = make_version(model, stage=Stage.PRODUCTION, metrics={"accuracy": 0.90})
    with_evidence(holder)
    candidate = make_version(model, metrics={"accuracy": 0.905})
    return model, holder, candidate


def request_for(candidate: ModelVersion, requester: User) -> TransitionRequest:
    return opening.request_create(
        model=candidate.model.name,
        version=candidate.version,
        target="Production",
        requester=requester,
    )


def needs(request: TransitionRequest) -> list[tuple[str, int]]:
    request.refresh_from_db()
    return [(r["group"], r["approvals"]) for r in request.policy_snapshot["require"]]


def test_breaking_signature_adds_the_platform_sign_off_and_says_why(pair, people):
    _, _, candidate = pair
    with_evidence(candidate, signature={**SIGNATURE, "inputs": SIGNATURE["inputs"][:1]})

    request = request_for(candidate, people["requester"])

    assert needs(request) == [("data-science", 2), ("platform", 1)]
    (applied,) = request.policy_snapshot["escalation"]["applied"]
    assert applied["when"] == "signature_breaking"
    assert "breaking: column `income` removed" in applied["reason"]


def test_changed_requirements_add_an_ml_lead(pair, people):
    _, _, candidate = pair
    with_evidence(candidate, requirements=[*REQUIREMENTS, "lightgbm==4.5.0"])

    request = request_for(candidate, people["requester"])

    assert needs(request) == [("data-science", 2), ("ml-leads", 1)]
    assert "added lightgbm==4.5.0" in request.policy_snapshot["escalation"]["applied"][0]["reason"]


def test_a_changed_dataset_raises_a_group_already_required(pair, people):
    _, _, candidate = pair
    with_evidence(candidate, datasets=[{**DATASETS[0], "digest": "fff000"}])

    request = request_for(candidate, people["requester"])

    assert needs(request) == [("data-science", 3)]


def test_no_change_fast_path_lowers_the_quorum_to_one_approval(pair, people):
    _, _, candidate = pair
    with_evidence(candidate)
    request = request_for(candidate, people["requester"])
    assert needs(request) == [("data-science", 1)]
    assert request.policy_snapshot["policy_require"] == [{"group": "data-science", "approvals": 2}]

    voting.vote_cast(request_id=request.pk, user=people["scientist1"], decision="approve")

    request.refresh_from_db()
    assert request.decision == Decision.APPROVED


def test_metrics_moved_beyond_the_tolerance_take_the_normal_path(people):
    model = make_model("churn")
    with_evidence(make_version(model, stage=Stage.PRODUCTION, metrics={"accuracy": 0.90}))
    candidate = make_version(model, metrics={"accuracy": 0.95})
    with_evidence(candidate)

    request = request_for(candidate, people["requester"])

    assert needs(request) == [("data-science", 2)]
    assert request.policy_snapshot["escalation"]["applied"] == []


def test_unread_evidence_applies_every_escalation_until_it_is_read(pair, people):
    _, _, candidate = pair
    request = request_for(candidate, people["requester"])
    assert needs(request) == [("data-science", 3), ("platform", 1), ("ml-leads", 1)]
    assert "not been read" in request.policy_snapshot["escalation"]["applied"][0]["reason"]
    voting.vote_cast(request_id=request.pk, user=people["scientist1"], decision="approve")

    with_evidence(candidate)
    on_evidence_stored(sender=VersionEvidence, version_ids=[candidate.pk])

    assert needs(request) == [("data-science", 1)]
    # The approval was given on other evidence (none): it no longer counts.
    vote = Vote.objects.get(request=request)
    assert vote.stale and "evidence" in vote.stale_reason
    assert vote.seen_evidence == {
        "candidate": None,
        "baseline": request.version.model.versions.get(version=1).evidence.digest,
    }
    request.refresh_from_db()
    assert request.decision == Decision.PENDING


def test_votes_store_the_evidence_digests_they_approved(pair, people):
    _, holder, candidate = pair
    mine = with_evidence(candidate)
    request = request_for(candidate, people["requester"])

    vote = voting.vote_cast(request_id=request.pk, user=people["scientist1"], decision="approve")

    assert vote.seen_evidence == {"candidate": mine.digest, "baseline": holder.evidence.digest}


def test_required_evidence_gate_rejects_a_breaking_signature(people):
    policies_load(text=POLICIES + EVIDENCE_GATE)
    model = make_model("churn")
    with_evidence(make_version(model, stage=Stage.PRODUCTION, metrics={"accuracy": 0.90}))
    candidate = make_version(model, metrics={"accuracy": 0.9})
    with_evidence(candidate, signature={**SIGNATURE, "inputs": SIGNATURE["inputs"][:1]})

    request = request_for(candidate, people["requester"])

    assert request.decision == Decision.REJECTED
    assert "signature_breaking is true" in request.decision_reason
    assert "column `income` removed" in request.decision_reason


def test_evidence_gate_on_unread_evidence_waits_then_rejects_when_read(people):
    policies_load(text=POLICIES + EVIDENCE_GATE)
    model = make_model("churn")
    with_evidence(make_version(model, stage=Stage.PRODUCTION, metrics={"accuracy": 0.90}))
    candidate = make_version(model, metrics={"accuracy": 0.9})
    request = request_for(candidate, people["requester"])
    assert request.decision == Decision.PENDING

    with_evidence(candidate, signature=None)  # logged without a signature: inputs unchecked
    on_evidence_stored(sender=VersionEvidence, version_ids=[candidate.pk])

    request.refresh_from_db()
    assert request.decision == Decision.REJECTED
    assert "signature removed" in request.decision_reason


def test_unreadable_evidence_is_unknown_so_escalations_apply(pair, people):
    _, _, candidate = pair
    with_evidence(candidate, problems={"model": "the MLmodel file could not be read: 404"})

    request = request_for(candidate, people["requester"])

    assert ("platform", 1) in needs(request)
    reasons = [a["reason"] for a in request.policy_snapshot["escalation"]["applied"]]
    assert all("unknown" in r and "could not be read: 404" in r for r in reasons[:2])


def test_request_page_shows_the_rule_and_the_evidence(client, pair, people):
    _, _, candidate = pair
    with_evidence(candidate, signature={**SIGNATURE, "inputs": SIGNATURE["inputs"][:1]})
    request = request_for(candidate, people["requester"])
    client.force_login(people["scientist1"])

    page = client.get(f"/reviews/{request.pk}/").content.decode()

    assert "escalated (signature_breaking)" in page
    assert "breaking: column `income` removed" in page
    assert "The policy alone asks 2 of data-science" in page
    assert counting.tally(request).progress[1].group == "platform"


def test_export_then_load_keeps_the_evidence_rules(people):
    policies_load(text=POLICIES + EVIDENCE_GATE)
    exported = policies_export()

    report = policies_load(text=exported)

    assert not report.changed_anything
    assert "when: no_change" in exported and "tolerance: 0.01" in exported
    assert "evidence: signature_breaking" in exported


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "when: signature_breaking",
            "when: schema_changed",
            "policies[0].escalate[0].when: Input should be",
        ),
        (
            "{group: platform, approvals: 1}",
            "{group: nobody, approvals: 1}",
            "policies[0].escalate[0].require[0].group: unknown group 'nobody'",
        ),
        (
            "{group: platform, approvals: 1}",
            "{group: platform, approvals: 2}",
            "policies[0].escalate[0].require[0].approvals: 2 but group 'platform' has 1 member",
        ),
        (
            "require: [{group: platform, approvals: 1}]}",
            "require: [{group: platform, approvals: 1}], tolerance: 0.1}",
            "policies[0].escalate[0]: tolerance applies only to `when: no_change`",
        ),
        (
            "when: dataset_changed",
            "when: no_change",
            "policies[0]: escalate: give at most one `when: no_change` rule",
        ),
        (
            "require: [{group: ml-leads, approvals: 1}]",
            "require: ml-leads",
            "policies[0].escalate[1].require: must be a list of mappings, got a string",
        ),
        (
            "tolerance: 0.01",
            "tolerance: -1",
            "policies[0].escalate[3].tolerance: Input should be greater than or equal to 0",
        ),
    ],
)
def test_each_evidence_rule_problem_names_its_place_and_nothing_changes(cast, old, new, expected):
    assert old in POLICIES

    with pytest.raises(PolicyInvalid) as caught:
        policies_load(text=POLICIES.replace(old, new, 1))

    assert any(str(p).startswith(expected) for p in caught.value.problems), [
        str(p) for p in caught.value.problems
    ]
    assert not RegisteredModel.objects.exists()
    from reviews.models import ApprovalPolicy

    assert not ApprovalPolicy.objects.exists()


def test_evidence_gate_problems_name_their_place(cast):
    text = POLICIES + "    evidence_gates: [{evidence: size_changed, kind: auto_approve}]\n"

    with pytest.raises(PolicyInvalid) as caught:
        policies_load(text=text)

    found = [str(p) for p in caught.value.problems]
    assert any(
        p.startswith("policies[0].evidence_gates[0].evidence: Input should be") for p in found
    )
    assert any(p.startswith("policies[0].evidence_gates[0].kind: Input should be") for p in found)


def test_api_says_which_evidence_rule_applied(client, pair, people):
    from reviews.api.auth import token_create

    _, _, candidate = pair
    with_evidence(candidate, requirements=[*REQUIREMENTS, "lightgbm==4.5.0"])
    request = request_for(candidate, people["requester"])
    _, token = token_create(user=people["scientist1"], name="ci")

    body = client.get(f"/api/v1/requests/{request.pk}", HTTP_AUTHORIZATION=f"Bearer {token}").json()

    assert [rule["when"] for rule in body["escalation"]] == ["requirements_changed"]
    assert [(r["group"], r["needed"]) for r in body["requirements"]] == [
        ("data-science", 2),
        ("ml-leads", 1),
    ]


def test_the_review_mail_says_why_the_evidence_raised_what_the_request_needs(pair, people):
    from reviews.models import AuditEvent
    from reviews.notify import rendering

    _, _, candidate = pair
    with_evidence(candidate, signature={**SIGNATURE, "inputs": SIGNATURE["inputs"][:1]})
    request = request_for(candidate, people["requester"])
    opened = AuditEvent.objects.get(request=request, action="request.created")

    mail = rendering.render(opened, "review_needed")

    for body in (mail["text"], mail["html"]):
        assert "Why it needs that many: raised, the signature breaks" in body
        assert "column `income` removed" in body
