"""Where a request stands, from the facts: expired at once, the quorum named, retries that can
help (reviews/decisions/standing.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.audit import chain
from reviews.decisions import deciding, opening, standing, voting
from reviews.decisions.counting import tally
from reviews.errors import WrongExecutionState
from reviews.models import AuditEvent, Decision, Execution, TransitionRequest
from tests.factories import make_history, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(fraud, requester):
    return opening.request_create(
        model="fraud", version=2, target="Production", requester=requester
    )


def vote(request, user, decision="approve", comment=""):
    voting.vote_cast(request_id=request.pk, user=user, decision=decision, comment=comment)


def fresh(request) -> TransitionRequest:
    return TransitionRequest.objects.select_related("version", "decided_by").get(pk=request.pk)


def decided_by(request) -> str:
    request = fresh(request)
    votes = list(request.votes.select_related("user"))
    return standing.decided_by_words(request, votes, tally(request, votes))


# -- expiry -------------------------------------------------------------------------------------


def test_a_pending_request_past_its_deadline_reads_expired_before_the_reconciler_runs(pending):
    TransitionRequest.objects.filter(pk=pending.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    request = fresh(pending)

    assert request.decision == Decision.PENDING  # nothing stored has changed yet
    assert standing.is_overdue(request)
    assert standing.status(request) == "expired"
    assert standing.state_label(request) == "expired"
    assert standing.state_class(request) == "state-expired"


def test_a_pending_request_within_its_deadline_reads_pending(pending):
    assert not standing.is_overdue(pending)
    assert standing.status(pending) == "pending"
    assert standing.state_label(pending) == "pending"


def test_after_approval_the_status_is_the_transitions(pending):
    for execution in (Execution.QUEUED, Execution.RUNNING, Execution.DONE, Execution.FAILED):
        TransitionRequest.objects.filter(pk=pending.pk).update(
            decision=Decision.APPROVED, execution=execution
        )
        request = fresh(pending)
        assert standing.status(request) == execution
        assert standing.state_label(request) == f"approved · {request.get_execution_display()}"


# -- who decided ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "joined"),
    [([], ""), (["alice"], "alice"), (["alice", "bob"], "alice and bob"),
     (["alice", "bob", "carol"], "alice, bob and carol")],
)  # fmt: skip
def test_join_names(names, joined):
    assert standing.join_names(names) == joined


def test_an_approval_names_everyone_counted_in_the_order_they_voted(
    pending, lead, scientist1, scientist2
):
    for user in (scientist2, lead, scientist1):
        vote(pending, user)

    assert fresh(pending).decided_by == scientist1  # the last voter, as stored
    assert decided_by(pending) == "by scientist2, lead and scientist1"


def test_an_approval_not_counted_is_not_named(policies, pending, lead, scientist1, scientist2):
    """Someone whose group was full when they approved did not make the quorum."""
    extra = policies["scientist3"]
    for user in (scientist1, scientist2, extra, lead):
        vote(pending, user)

    assert decided_by(pending) == "by scientist1, scientist2 and lead"


def test_gates_and_rejections_and_cancellations_name_who_decided(
    fraud, pending, requester, scientist1
):
    vote(pending, scientist1, "reject", "f1 dropped")
    assert decided_by(pending) == "by scientist1"

    cancelled = opening.request_create(
        model="fraud", version=2, target="Staging", requester=requester
    )
    deciding.request_cancel(request_id=cancelled.pk, user=requester)
    assert decided_by(cancelled) == "by requester"

    # Staging auto-approves above 0.97 accuracy: v3 passes, the gates decide at once.
    # Its history as a page cached it: one value, logged before the version was registered.
    make_history(make_version(fraud, 3, metrics={"accuracy": 0.98}), "accuracy", [0.98])
    gated = opening.request_create(model="fraud", version=3, target="Staging", requester=requester)
    assert fresh(gated).decision == Decision.APPROVED
    assert decided_by(gated) == "by the policy's gates"


def test_a_break_glass_move_names_who_broke_glass_and_its_revert_the_policy(
    fraud, outsider, scientist1
):
    from reviews.emergency.break_glass import break_glass_move
    from reviews.emergency.ratification import ratification_open
    from reviews.models import RequestKind
    from reviews.policies.loading import policies_load
    from tests.policy_files import policies_with

    policies_load(text=policies_with(break_glass="ratify_within: 1h, on_unratified: revert"))
    move = break_glass_move(
        model="fraud", version=2, target="Production", user=outsider, reason="INC-7"
    )
    assert decided_by(move) == "by break glass (outsider); gates skipped"

    # Rejected, the ratification leaves the move unratified: the policy reverts it at once, and
    # no gate had a say in that.
    TransitionRequest.objects.filter(pk=move.pk).update(execution=Execution.DONE)
    ratification = ratification_open(fresh(move))
    vote(ratification, scientist1, "reject", "no incident")
    revert = TransitionRequest.objects.get(kind=RequestKind.ROLLBACK, undoes=move)
    assert fresh(revert).decision == Decision.APPROVED
    assert decided_by(revert) == "by the policy"


# -- retrying -------------------------------------------------------------------------------------


def fail(request, *, permanent: bool) -> TransitionRequest:
    TransitionRequest.objects.filter(pk=request.pk).update(
        decision=Decision.APPROVED, execution=Execution.FAILED, execution_error="gone"
    )
    details = {"error": "gone", **({standing.PERMANENT: True} if permanent else {})}
    chain.record("transition.failed", request=request, details=details)
    return fresh(request)


def test_an_ordinary_failure_may_be_retried(pending):
    assert standing.retry_blocker(fail(pending, permanent=False)) == ""


def test_a_version_gone_from_mlflow_cannot_be_retried_and_says_why(pending, admin_user):
    failed = fail(pending, permanent=True)

    blocker = standing.retry_blocker(failed)
    assert blocker.startswith("Version 2 no longer exists in MLflow: retrying cannot bring it back")

    with pytest.raises(WrongExecutionState, match="no longer exists in MLflow"):
        deciding.transition_retry(request_id=failed.pk, user=admin_user)
    assert fresh(failed).execution == Execution.FAILED  # nothing changed
    assert not AuditEvent.objects.filter(action="transition.retry").exists()


def test_a_version_the_mirror_has_deleted_cannot_be_retried(pending):
    failed = fail(pending, permanent=False)
    failed.version.deleted = True
    failed.version.save(update_fields=["deleted"])

    assert "no longer exists in MLflow" in standing.retry_blocker(fresh(failed))
