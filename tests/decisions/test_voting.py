"""Votes and quorum (`reviews.decisions.voting`): every group's sign-offs from different people,
self-approval, the refusals, what a voter saw, and approvals that go stale when the evidence
changes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.models import ChangeKind, ModelVersion, RegistryChange
from reviews.decisions import counting, voting
from reviews.errors import (
    AlreadyVoted,
    CommentRequired,
    InvalidVote,
    NotEligible,
    RequestClosed,
    SelfApprovalNotAllowed,
)
from reviews.execution import registry_events
from reviews.models import AuditEvent, Decision, Execution, TransitionRequest, Vote
from reviews.policies.loading import policies_export, policies_load
from tests.factories import GOOD, approve, make_mirror
from tests.factories import open_request as create
from tests.factories import reloaded as refresh

pytestmark = pytest.mark.django_db


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


# -- approvals that go stale -------------------------------------------------------------------


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
