"""The review engine's domain actions: requests, gates, votes, quorum, staleness, expiry, cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from registry import content
from registry.models import ChangeKind, ModelVersion, RegisteredModel, RegistryChange
from registry.sync import sync_registry
from reviews.audit import verification
from reviews.decisions import counting, deciding, voting
from reviews.errors import (
    AlreadyAtTarget,
    AlreadyVoted,
    CommentRequired,
    DuplicateRequest,
    InvalidTarget,
    InvalidVersion,
    InvalidVote,
    NoPolicy,
    NotAllowed,
    NotARequester,
    NotEligible,
    RequestClosed,
    SelfApprovalNotAllowed,
    UnknownModel,
    UnknownVersion,
    VersionDeleted,
    WrongExecutionState,
)
from reviews.execution import registry_events
from reviews.models import (
    ApprovalPolicy,
    AuditEvent,
    Decision,
    Execution,
    TransitionRequest,
    Vote,
)
from reviews.policies.loading import policies_export, policies_load, set_requesters
from tests.factories import (
    GOOD,
    log_model_files,
    make_history,
    make_mirror,
    make_request,
    now_ms,
    register_with_metrics,
)

pytestmark = pytest.mark.django_db


def create(requester, version=2, target="Production", model="fraud-detector", **kwargs):
    return make_request(model, version, target, requester=requester, **kwargs)


def approve(request, user, comment=""):
    return voting.vote_cast(request_id=request.pk, user=user, decision="approve", comment=comment)


def refresh(request) -> TransitionRequest:
    return TransitionRequest.objects.get(pk=request.pk)


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


# -- votes and quorum --------------------------------------------------------------------------


def test_quorum_needs_every_group(
    policies, requester, lead, scientist1, scientist2, django_capture_on_commit_callbacks, redis_url
):
    make_mirror()
    request = create(requester)

    approve(request, scientist1)
    approve(request, scientist2)
    assert refresh(request).decision == Decision.PENDING  # data-science 2/2, ml-leads 0/1
    assert [str(p) for p in counting.progress(refresh(request))] == [
        "ml-leads 0/1",
        "data-science 2/2",
    ]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        approve(request, lead)

    request = refresh(request)
    assert request.decision == Decision.APPROVED and request.execution == Execution.QUEUED
    assert request.decided_by == lead
    assert request.decision_reason == (
        "Quorum reached by 3 different people: "
        "ml-leads 1/1 (lead), data-science 2/2 (scientist1, scientist2)"
    )
    assert len(callbacks) == 1  # the transition job, queued after commit


def test_a_voter_in_two_required_groups_counts_once(policies, requester, lead, scientist1):
    Group.objects.get(name="data-science").user_set.add(lead)
    make_mirror()
    request = create(requester)

    vote = approve(request, lead)

    assert vote.groups == ["ml-leads", "data-science"]  # eligible for both, counted for one
    assert [str(p) for p in counting.progress(refresh(request))] == [
        "ml-leads 1/1",
        "data-science 0/2",
    ]


def test_one_person_in_both_groups_and_one_other_do_not_make_a_three_person_quorum(
    policies, requester, lead, scientist1, scientist2
):
    """The attack: lead is in ml-leads and data-science; 1 ml-lead + 2 data-science needs three
    different people, so lead and scientist1 alone must not approve it."""
    Group.objects.get(name="data-science").user_set.add(lead)
    make_mirror()
    request = create(requester)

    approve(request, lead)
    approve(request, scientist1)

    assert refresh(request).decision == Decision.PENDING
    assert [str(p) for p in counting.progress(refresh(request))] == [
        "ml-leads 1/1",
        "data-science 1/2",
    ]
    assert not AuditEvent.objects.filter(action="request.approved").exists()

    approve(request, scientist2)  # a third, different person

    request = refresh(request)
    assert request.decision == Decision.APPROVED
    assert request.decision_reason == (
        "Quorum reached by 3 different people: "
        "ml-leads 1/1 (lead), data-science 2/2 (scientist1, scientist2)"
    )


def test_an_approval_moves_to_the_group_where_it_lets_quorum_be_reached(
    policies, requester, lead, scientist1, django_user_model
):
    """lead (ml-leads and data-science) is counted for ml-leads first; when another ml-lead
    approves, lead's approval is counted for data-science instead, which completes quorum."""
    Group.objects.get(name="data-science").user_set.add(lead)
    other_lead = django_user_model.objects.create_user("lead2")
    Group.objects.get(name="ml-leads").user_set.add(other_lead)
    make_mirror()
    request = create(requester)

    approve(request, lead)
    approve(request, scientist1)
    assert refresh(request).decision == Decision.PENDING
    approve(request, other_lead)

    request = refresh(request)
    assert request.decision == Decision.APPROVED
    assert request.decision_reason.endswith(
        "ml-leads 1/1 (lead2), data-science 2/2 (lead, scientist1)"
    )


def test_requester_cannot_approve_their_own_request(policies, scientist1):
    make_mirror()
    request = create(scientist1)

    with pytest.raises(SelfApprovalNotAllowed, match="does not allow self-approval"):
        approve(request, scientist1)

    assert not Vote.objects.exists()


def test_self_approval_is_allowed_when_the_policy_says_so(policies, scientist1):
    text = policies_export().replace("allow_self_approval: false", "allow_self_approval: true")
    policies_load(text=text)
    make_mirror()
    request = create(scientist1)

    assert approve(request, scientist1).groups == ["data-science"]


def test_a_second_vote_by_the_same_user_is_refused_not_counted(policies, requester, scientist1):
    make_mirror()
    request = create(requester)
    approve(request, scientist1)

    with pytest.raises(AlreadyVoted, match=r"You already voted \(approve\)"):
        approve(request, scientist1)

    assert Vote.objects.count() == 1


def test_outsider_cannot_vote(policies, requester, outsider):
    make_mirror()
    request = create(requester)

    with pytest.raises(NotEligible, match="You are not in ml-leads or data-science"):
        approve(request, outsider)


def test_a_vote_on_a_decided_request_is_refused(policies, requester, scientist1):
    make_mirror(versions={2: ("None", {"accuracy": 0.5, "f1": 0.5})})
    request = create(requester)  # rejected by its gates

    with pytest.raises(RequestClosed, match="already rejected"):
        approve(request, scientist1)


def test_a_decided_request_is_never_decided_again(policies, requester, admin_user):
    make_mirror(versions={2: ("None", {"accuracy": 0.5, "f1": 0.5})})
    request = refresh(create(requester))  # rejected by its gates
    events = AuditEvent.objects.count()

    with pytest.raises(RequestClosed) as refused:
        deciding.decide(request, Decision.APPROVED, actor=admin_user, reason="again")

    assert str(refused.value) == (
        f"Request #{request.pk} is already rejected; it cannot also be approved."
    )
    assert refresh(request).decision == Decision.REJECTED
    assert refresh(request).execution == Execution.NONE
    assert AuditEvent.objects.count() == events


def test_a_vote_on_an_expired_request_is_refused(policies, requester, scientist1):
    make_mirror()
    request = create(requester)
    TransitionRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now())

    with pytest.raises(RequestClosed, match="expired"):
        approve(request, scientist1)


def test_a_rejection_must_say_why(policies, requester, scientist1):
    make_mirror()
    request = create(requester)

    with pytest.raises(CommentRequired):
        voting.vote_cast(request_id=request.pk, user=scientist1, decision="reject", comment="  ")
    with pytest.raises(InvalidVote):
        voting.vote_cast(request_id=request.pk, user=scientist1, decision="maybe")
    assert not Vote.objects.exists()


def test_one_eligible_rejection_rejects(policies, requester, lead, scientist1):
    make_mirror()
    request = create(requester)
    approve(request, lead)

    voting.vote_cast(
        request_id=request.pk, user=scientist1, decision="reject", comment="recall dropped"
    )

    request = refresh(request)
    assert request.decision == Decision.REJECTED and request.decided_by == scientist1
    assert request.decision_reason == "recall dropped"


def test_each_vote_stores_what_the_voter_saw(policies, requester, scientist1):
    make_mirror()
    request = create(requester)

    vote = approve(request, scientist1)

    assert vote.seen_metrics == {
        "candidate": GOOD,
        "baseline": {"accuracy": 0.89, "f1": 0.87},
    }


def test_vote_refusal_explains_why_in_words(policies, requester, lead, outsider):
    make_mirror()
    request = create(requester)
    approve(request, lead)

    assert voting.vote_refusal(request, requester).startswith("You requested this")
    assert voting.vote_refusal(request, outsider) == "You are not in ml-leads or data-science."
    assert voting.vote_refusal(request, lead) == "You already voted (approve) on this request."
    assert voting.vote_refusal(request, policies["scientist1"]) is None


def test_policy_edits_do_not_change_a_request_in_flight(
    policies, requester, lead, scientist1, scientist2
):
    make_mirror()
    request = create(requester)
    text = policies_export().replace("approvals: 2", "approvals: 3")
    policies_load(text=text)

    approve(request, lead)
    approve(request, scientist1)
    approve(request, scientist2)

    assert refresh(request).decision == Decision.APPROVED


# -- staleness, expiry, cancellation, retry ----------------------------------------------------


def test_approvals_go_stale_when_the_candidates_metrics_change(
    policies, requester, lead, scientist1, no_mlflow
):
    versions = make_mirror()
    request = create(requester)
    approve(request, lead)
    ModelVersion.objects.filter(pk=versions[2].pk).update(metrics={"accuracy": 0.9, "f1": 0.86})
    change = RegistryChange.objects.create(
        model=versions[2].model, version=versions[2], kind=ChangeKind.METRICS_CHANGED
    )

    registry_events.handle_changes([change])

    vote = Vote.objects.get()
    # The gated values that moved, with their old and new values (no history: MLflow has no
    # such run, so no step or time is said).
    assert vote.stale and vote.stale_reason == (
        "accuracy changed from 0.9100 to 0.9000; f1 changed from 0.8800 to 0.8600."
    )
    assert [str(p) for p in counting.progress(refresh(request))][0] == "ml-leads 0/1"
    assert refresh(request).candidate_metrics == {"accuracy": 0.9, "f1": 0.86}
    approve(request, scientist1)  # voting goes on; the lead must approve again, and may
    again = approve(request, lead, comment="still better")

    assert [(v.user, v.stale) for v in Vote.objects.filter(user=lead)] == [
        (lead, True),
        (lead, False),
    ]
    assert counting.tally(refresh(request)).counted_for[again.pk] == "ml-leads"
    with pytest.raises(AlreadyVoted):  # once: the new vote is current
        approve(request, lead)


def test_the_database_holds_one_current_vote_per_user_and_any_number_of_stale_ones(
    policies, requester, lead
):
    make_mirror()
    request = create(requester)
    approve(request, lead)
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(request=request, user=lead, decision="reject", comment="again")

    for _ in range(2):
        voting.approvals_mark_stale(request, reason="The evidence changed.")
        approve(request, lead)

    assert list(Vote.objects.filter(user=lead).values_list("stale", flat=True)) == [
        True,
        True,
        False,
    ]


def test_approvals_go_stale_and_gates_rerun_when_the_target_holder_changes(
    policies, requester, lead
):
    versions = make_mirror(
        versions={
            1: ("Production", {"accuracy": 0.85, "f1": 0.85}),
            2: ("None", GOOD),
            3: ("None", {"accuracy": 0.95, "f1": 0.95}),
        }
    )
    request = create(requester)
    approve(request, lead)
    ModelVersion.objects.filter(pk=versions[3].pk).update(stage="Production")
    change = RegistryChange.objects.create(
        model=versions[3].model,
        version=versions[3],
        kind=ChangeKind.STAGE_CHANGED,
        old="None",
        new="Production",
    )

    registry_events.handle_changes([change])

    request = refresh(request)
    assert request.baseline == versions[3]
    assert Vote.objects.get().stale_reason == "Production is now held by v3 (was v1)."
    # f1 0.88 is now more than 0.01 below the new holder's 0.95: the required gate fails.
    assert request.decision == Decision.REJECTED
    assert "after the evidence changed" in request.decision_reason
    assert RegistryChange.objects.get().origin == "out_of_band"


def test_pending_request_ends_when_its_version_is_deleted_in_mlflow(policies, requester):
    versions = make_mirror()
    request = create(requester)
    ModelVersion.objects.filter(pk=versions[2].pk).update(deleted=True)
    change = RegistryChange.objects.create(
        model=versions[2].model, version=versions[2], kind=ChangeKind.VERSION_DELETED
    )

    registry_events.handle_changes([change])

    assert refresh(request).decision == Decision.CANCELLED


def test_overdue_pending_requests_expire_and_nothing_else(policies, requester):
    make_mirror()
    overdue = create(requester)
    fresh = create(requester, target="@champion")
    TransitionRequest.objects.filter(pk=overdue.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert deciding.requests_expire_overdue() == [overdue.pk]

    assert refresh(overdue).decision == Decision.EXPIRED
    assert refresh(overdue).execution == Execution.NONE
    assert refresh(fresh).decision == Decision.PENDING
    assert AuditEvent.objects.get(action="request.expired").actor == "system"


def test_requester_can_cancel_a_pending_request(policies, requester):
    make_mirror()
    request = create(requester)

    deciding.request_cancel(request_id=request.pk, user=requester)

    assert refresh(request).decision == Decision.CANCELLED


def test_only_the_requester_or_an_admin_cancels(policies, requester, scientist1, admin_user):
    make_mirror()
    request = create(requester)

    with pytest.raises(NotAllowed):
        deciding.request_cancel(request_id=request.pk, user=scientist1)
    deciding.request_cancel(request_id=request.pk, user=admin_user)
    with pytest.raises(RequestClosed):
        deciding.request_cancel(request_id=request.pk, user=requester)


def test_retry_needs_a_failed_execution_and_an_admin(policies, requester, admin_user):
    make_mirror()
    request = create(requester)

    with pytest.raises(NotAllowed):
        deciding.transition_retry(request_id=request.pk, user=requester)
    with pytest.raises(WrongExecutionState, match="no failed transition to retry"):
        deciding.transition_retry(request_id=request.pk, user=admin_user)


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


def test_the_audit_chain_holds_after_a_busy_review(
    policies, requester, lead, scientist1, scientist2
):
    make_mirror()
    request = create(requester)
    approve(request, lead)
    approve(request, scientist1)
    deciding.request_cancel(request_id=request.pk, user=requester)

    result = verification.verify()

    # The policy load, the request, two votes, the cancellation.
    assert result.ok and result.checked == AuditEvent.objects.count() == 5
