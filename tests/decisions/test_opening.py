"""Opening a request (`reviews.decisions.opening`): the policy snapshot, baseline and gate
results it keeps, the refusals, gates that decide at once, metrics MLflow stores as NaN or
infinity, and a rejected version asked for again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db.models import ProtectedError
from django.utils import timezone

from registry import content
from registry.models import ModelVersion, RegisteredModel
from registry.sync import sync_registry
from reviews.audit import verification
from reviews.decisions import voting
from reviews.errors import (
    AlreadyAtTarget,
    DuplicateRequest,
    InvalidTarget,
    InvalidVersion,
    NoPolicy,
    NotARequester,
    UnknownModel,
    UnknownVersion,
    VersionDeleted,
)
from reviews.models import ApprovalPolicy, AuditEvent, Decision, Execution, TransitionRequest, Vote
from reviews.policies.loading import set_requesters
from tests.factories import GOOD, approve, make_history, make_mirror, now_ms
from tests.factories import open_request as create
from tests.factories import reloaded as refresh
from tests.mlflow_registry import log_model_files, register_with_metrics

pytestmark = pytest.mark.django_db


# -- creating a request ------------------------------------------------------------------------


def test_request_keeps_policy_snapshot_baseline_and_gate_results(policies, requester):
    versions = make_mirror()

    request = create(requester, comment="retrained on Q3")

    assert request.decision == Decision.PENDING and request.execution == Execution.NONE
    assert request.baseline == versions[1]
    assert request.baseline_metrics == {"accuracy": 0.89, "f1": 0.87}
    assert request.policy_snapshot["name"] == "production"
    assert request.policy_snapshot["require"] == [
        {"group": "ml-leads", "approvals": 1},
        {"group": "data-science", "approvals": 2},
    ]
    gates = {(g["metric"], g["passed"]) for g in request.gate_results}
    assert gates == {("accuracy", True), ("f1", True)}
    f1 = next(g for g in request.gate_results if g["metric"] == "f1")
    assert f1["baseline_value"] == 0.87 and f1["threshold"] == pytest.approx(0.86)
    assert request.expires_at > timezone.now() + timedelta(days=6)
    assert AuditEvent.objects.filter(action="request.created", request=request).exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": "nope"}, UnknownModel, "There is no registered model named 'nope'"),
        ({"version": "abc"}, InvalidVersion, "Version must be a whole number, got 'abc'"),
        ({"version": 9}, UnknownVersion, "fraud-detector has no version 9"),
        ({"target": "Prod"}, InvalidTarget, "'Prod' is not a stage"),
        ({"target": "@"}, InvalidTarget, "is not a stage"),
        ({"version": 1}, AlreadyAtTarget, "already at Production"),
        ({"target": "Archived"}, NoPolicy, "No approval policy covers fraud-detector → Archived"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message_and_change_nothing(
    policies, requester, kwargs, error, message
):
    make_mirror()
    events = AuditEvent.objects.count()

    with pytest.raises(error, match=message):
        create(requester, **kwargs)

    assert not TransitionRequest.objects.exists() and AuditEvent.objects.count() == events


def test_deleted_version_cannot_be_requested(policies, requester):
    ModelVersion.objects.filter(pk=make_mirror()[2].pk).update(deleted=True)

    with pytest.raises(VersionDeleted, match="was deleted in MLflow"):
        create(requester)


def test_a_policy_naming_requester_groups_refuses_everyone_else(policies, requester, lead):
    make_mirror()
    releasers = Group.objects.create(name="release-managers")
    releasers.user_set.add(lead)
    set_requesters(ApprovalPolicy.objects.get(name="production"), [releasers])
    events = AuditEvent.objects.count()

    with pytest.raises(
        NotARequester, match="Only members of release-managers may request Prod"
    ) as refused:
        create(requester)
    # Whom to ask: the group's members by name.
    assert str(refused.value).endswith("ask lead to request it, or an administrator to add you.")

    assert not TransitionRequest.objects.exists() and AuditEvent.objects.count() == events
    assert create(requester, target="Staging").target == "Staging"  # no requesters: anyone
    assert create(lead).policy_snapshot["requesters"] == ["release-managers"]
    with pytest.raises(ProtectedError):  # deleting the group would let anyone request
        releasers.delete()


def test_a_refusal_names_a_few_members_and_counts_the_rest(policies, django_user_model):
    from reviews.decisions.opening import ASKED_BY_NAME, whom_to_ask

    crowd = Group.objects.create(name="crowd")
    Group.objects.create(name="empty")
    users = [
        django_user_model.objects.create_user(f"member{n:02}") for n in range(ASKED_BY_NAME + 2)
    ]
    crowd.user_set.add(*users)

    assert whom_to_ask(["crowd"]) == (
        "ask member00, member01, member02, member03, member04 and 2 more to request it, "
        "or an administrator to add you."
    )
    assert whom_to_ask(["empty"]) == ("empty has no members yet; ask an administrator to add you.")


def test_second_open_request_for_the_same_version_and_target_is_refused(policies, requester):
    make_mirror()
    first = create(requester)

    with pytest.raises(DuplicateRequest, match=f"Request #{first.pk} .* is still open"):
        create(requester)

    assert create(requester, target="@champion").decision == Decision.PENDING


def test_failing_required_gate_rejects_at_once_with_the_reason(policies, requester):
    make_mirror(versions={2: ("None", {"accuracy": 0.72, "f1": 0.9})})

    request = create(requester)

    assert request.decision == Decision.REJECTED
    assert request.decided_by is None
    assert request.decision_reason == "Required gate failed: accuracy 0.7200, not >= 0.8000"
    event = AuditEvent.objects.get(action="request.rejected")
    assert event.actor == "policy"


def test_a_metric_the_run_never_logged_fails_its_gate_saying_so(policies, requester):
    make_mirror(versions={2: ("None", {"f1": 0.9})})

    request = create(requester)

    assert request.decision == Decision.REJECTED
    assert "the candidate's run never logged accuracy" in request.decision_reason


def test_baseline_gate_compares_with_the_current_holder_of_the_target(policies, requester):
    make_mirror(
        versions={
            1: ("Production", {"accuracy": 0.9, "f1": 0.90}),
            2: ("None", {"accuracy": 0.9, "f1": 0.885}),
            3: ("None", {"accuracy": 0.9, "f1": 0.895}),
        }
    )

    worse = create(requester, version=2)
    close_enough = create(requester, version=3)

    assert worse.decision == Decision.REJECTED
    assert "f1 0.8850, not >= baseline 0.9000 −0.0100 = 0.8900" in worse.decision_reason
    assert close_enough.decision == Decision.PENDING


def test_baseline_gate_with_no_baseline_passes_and_says_no_baseline(policies, requester):
    make_mirror(versions={1: ("None", GOOD)})

    request = create(requester, version=1)

    assert request.baseline is None and request.decision == Decision.PENDING
    f1 = next(g for g in request.gate_results if g["metric"] == "f1")
    assert f1["passed"] and f1["reason"].startswith("no baseline")


def test_alias_target_baseline_is_the_version_holding_the_alias(policies, requester):
    versions = make_mirror()
    RegisteredModel.objects.filter(name="fraud-detector").update(aliases={"champion": 1})
    ModelVersion.objects.filter(pk=versions[1].pk).update(aliases=["champion"])

    request = create(requester, target="@champion")

    assert request.baseline == versions[1]


def test_passing_auto_approve_gates_approve_without_a_vote(
    policies, requester, redis_url, no_mlflow, django_capture_on_commit_callbacks
):
    versions = make_mirror(versions={1: ("None", {"accuracy": 0.99})})
    # Its history as a page cached it (MLflow does not answer): one value, logged before the
    # version was registered.
    ModelVersion.objects.filter(pk=versions[1].pk).update(creation_timestamp=now_ms())
    make_history(versions[1], "accuracy", [0.99])

    with django_capture_on_commit_callbacks(execute=True):
        request = create(requester, version=1, target="Staging")

    assert request.decision == Decision.APPROVED and request.execution == Execution.QUEUED
    assert request.decision_reason.startswith(
        "Every auto-approve gate passed: accuracy 0.9900 > 0.9700"
    )
    assert AuditEvent.objects.get(action="request.approved").actor == "policy"


# -- metrics MLflow stores as NaN or infinity ----------------------------------------------------


def test_a_nan_logged_in_mlflow_rejects_the_request_saying_so(
    policies, requester, mlflow_client, unique_name
):
    register_with_metrics(mlflow_client, unique_name, {"accuracy": float("nan"), "f1": 0.9})
    sync_registry(model=unique_name, client=mlflow_client)

    request = create(requester, version=1, model=unique_name)

    assert request.decision == Decision.REJECTED
    assert request.decision_reason == ("Required gate failed: accuracy is NaN: not a finite number")
    request = refresh(request)
    assert request.candidate_metrics == {"accuracy": "NaN", "f1": pytest.approx(0.9)}
    assert request.gate_results[0]["value"] == "NaN"
    created = AuditEvent.objects.get(action="request.created", request=request)
    assert created.details["gates"][0]["value"] == "NaN"
    assert verification.verify().ok


def test_a_holder_with_a_nan_metric_can_still_be_replaced_by_the_reviewers(
    policies, requester, lead, scientist1, scientist2, mlflow_client, unique_name
):
    runs = [
        *register_with_metrics(mlflow_client, unique_name, {"accuracy": 0.9, "f1": float("nan")}),
        *register_with_metrics(mlflow_client, unique_name, {"accuracy": 0.92, "f1": float("inf")}),
        *register_with_metrics(mlflow_client, unique_name, {"accuracy": 0.92, "f1": 0.9}),
    ]
    for number, run_id in enumerate(runs, start=1):  # model files: nothing is approved unread
        log_model_files(mlflow_client, run_id, f"weights v{number}\n")
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=mlflow_client)
    content.digest_missing(client=mlflow_client)  # the digest job, after the sync

    infinite = create(requester, version=2, model=unique_name)
    request = create(requester, version=3, model=unique_name)

    assert infinite.decision == Decision.REJECTED and "f1 is ∞" in infinite.decision_reason
    assert request.decision == Decision.PENDING
    f1 = next(g for g in request.gate_results if g["metric"] == "f1")
    assert f1["passed"] and f1["baseline_value"] == "NaN"
    assert f1["reason"] == "not evaluated: the current holder's f1 is NaN"
    for user in (lead, scientist1, scientist2):
        approve(request, user)
    assert refresh(request).decision == Decision.APPROVED
    seen = Vote.objects.filter(request=request).first().seen_metrics
    assert seen["baseline"] == {"accuracy": pytest.approx(0.9), "f1": "NaN"}
    assert verification.verify().ok


def test_a_rejected_version_can_be_requested_again_and_history_is_kept(
    policies, requester, scientist1
):
    make_mirror()
    first = create(requester)
    voting.vote_cast(request_id=first.pk, user=scientist1, decision="reject", comment="overfits")

    # Asked again, it must answer the rejection (tests/decisions/test_related.py has the refusal).
    second = create(
        requester, comment="retrained", rejection_answer="retrained with regularisation"
    )

    assert second.pk != first.pk and second.decision == Decision.PENDING
    history = TransitionRequest.objects.filter(version__model__name="fraud-detector")
    assert [(r.pk, r.decision) for r in history.order_by("pk")] == [
        (first.pk, "rejected"),
        (second.pk, "pending"),
    ]
