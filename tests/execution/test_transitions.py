"""Decisions carried out for real: a real `mlflow server`, a real RQ worker, the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from registry import content
from registry.jobs import SYNC_QUEUE
from registry.models import TRANSITION_KINDS, ChangeKind, ModelVersion, RegistryChange, SyncRun
from registry.sync import sync_registry
from reviews.audit import verification
from reviews.decisions import deciding, opening, voting
from reviews.decisions import handoff as retries
from reviews.execution import jobs
from reviews.models import (
    AuditEvent,
    Decision,
    Execution,
    Notification,
    NotificationKind,
    TransitionRequest,
)
from tests.concurrency import approve_at_once
from tests.factories import approve_all, transition_actions
from tests.mlflow_registry import register_in_mlflow

pytestmark = pytest.mark.django_db


def test_last_approval_moves_the_version_in_mlflow_and_archives_the_old_one(
    approved, promoted, mlflow_client, transitions, syncs, simple_worker
):
    request = approved(3, "Production")
    assert transitions.job_ids == [jobs.transition_job_id(request)]

    simple_worker(transitions)

    assert mlflow_client.get_version(promoted, 3).stage == "Production"
    assert mlflow_client.get_version(promoted, 1).stage == "Archived"
    request.refresh_from_db()
    assert (request.decision, request.execution) == (Decision.APPROVED, Execution.DONE)
    assert request.execution_attempts == 1 and request.executed_at is not None
    done = AuditEvent.objects.get(action="transition.done")
    assert done.details == {"already_at_target": False, "archived_versions": [1]}
    # The job mirrors its own move before it lets go of the model, credited to the request.
    mirror = {v.version: v.stage for v in ModelVersion.objects.filter(model__name=promoted)}
    assert mirror == {1: "Archived", 2: "None", 3: "Production"}
    caused = {(c.version.version, c.old, c.new) for c in request.caused_changes.all()}
    assert caused == {(3, "None", "Production"), (1, "Production", "Archived")}
    assert set(request.caused_changes.values_list("origin", flat=True)) == {"quorum"}
    assert not request.awaiting_mirror
    # The follow-up sync stays queued, a job of its own (it mirrors the move when the job could
    # not); here it finds no move more (only the proof's tag, written after the move).
    assert [job.func_name for job in syncs.get_jobs()] == ["registry.jobs.sync_model"]
    moves = RegistryChange.objects.filter(model__name=promoted, kind__in=TRANSITION_KINDS)
    seen = moves.count()

    simple_worker(syncs)

    assert moves.count() == seen
    assert verification.verify().ok


def test_alias_target_sets_the_alias_in_mlflow(
    approved, promoted, mlflow_client, transitions, syncs, simple_worker
):
    mlflow_client.set_alias(promoted, "champion", 1)
    sync_registry(model=promoted, client=mlflow_client)
    request = approved(2, "@champion")

    simple_worker(transitions, syncs)

    assert mlflow_client.get_model(promoted).aliases == {"champion": 2}
    request.refresh_from_db()
    assert request.execution == Execution.DONE
    caused = {(c.kind, c.version.version) for c in request.caused_changes.all()}
    assert caused == {(ChangeKind.ALIAS_ADDED, 2), (ChangeKind.ALIAS_REMOVED, 1)}


def test_a_job_run_twice_transitions_once(approved, promoted, transitions, syncs, simple_worker):
    request = approved(2, "Production")

    first = jobs.execute_transition(request.pk)
    second = jobs.execute_transition(request.pk)
    simple_worker(syncs)

    assert first == f"{promoted} version 2 is at Production"
    assert second == f"request #{request.pk} was already carried out"
    moves = RegistryChange.objects.filter(
        model__name=promoted, version__version=2, kind=ChangeKind.STAGE_CHANGED
    )
    assert moves.count() == 1


def test_version_already_at_target_records_success_without_moving_anything(
    promoted,
    mlflow_client,
    requester,
    scientist1,
    transitions,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    request = opening.request_create(
        model=promoted, version=2, target="Staging", requester=requester
    )
    approve_all(request, scientist1, capture=django_capture_on_commit_callbacks)
    mlflow_client.transition_stage(promoted, 2, "Staging")  # someone beat the worker to it

    simple_worker(transitions)

    request.refresh_from_db()
    assert request.execution == Execution.DONE
    done = AuditEvent.objects.get(action="transition.done", request=request)
    assert done.details["already_at_target"] is True


def test_a_change_made_in_mlflow_directly_is_flagged_out_of_band(promoted, mlflow_client):
    mlflow_client.transition_stage(promoted, 2, "Staging")

    sync_registry(client=mlflow_client)

    change = RegistryChange.objects.get(
        model__name=promoted, kind=ChangeKind.STAGE_CHANGED, version__version=2
    )
    assert change.origin == "out_of_band"
    event = AuditEvent.objects.get(action="registry.out_of_band", model_name=promoted)
    assert (event.actor, event.version) == ("mlflow", 2)
    assert event.details == {"change": "stage_changed", "old": "None", "new": "Staging"}


def test_promoting_another_version_in_mlflow_makes_pending_approvals_stale(
    promoted, mlflow_client, requester, lead
):
    request = opening.request_create(
        model=promoted, version=2, target="Production", requester=requester
    )
    voting.vote_cast(request_id=request.pk, user=lead, decision="approve")

    mlflow_client.transition_stage(promoted, 3, "Production", archive_existing=True)
    sync_registry(client=mlflow_client)

    request.refresh_from_db()
    assert request.baseline.version == 3
    vote = request.votes.get()
    assert vote.stale and vote.stale_reason == "Production is now held by v3 (was v1)."


def test_mlflow_down_retries_then_fails_then_an_admin_retry_succeeds(
    mlflow_client,
    unique_name,
    unreachable_mlflow,
    policies,
    requester,
    lead,
    scientist1,
    scientist2,
    admin_user,
    transitions,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(model=unique_name, client=mlflow_client)
    content.digest_missing(client=mlflow_client)  # the digest job: requests pin the content
    request = opening.request_create(
        model=unique_name, version=2, target="Production", requester=requester
    )
    approve_all(request, lead, scientist1, scientist2, capture=django_capture_on_commit_callbacks)
    unreachable_mlflow.down()  # the job finds no MLflow answering, as when it is stopped

    simple_worker(transitions)

    request.refresh_from_db()
    assert request.execution == Execution.FAILED
    assert request.execution_attempts == 3
    assert "MLflow" in request.execution_error
    attempts = AuditEvent.objects.filter(request=request, action__startswith="transition.")
    assert list(attempts.order_by("sequence").values_list("action", flat=True)) == [
        "transition.started",
        "transition.attempt_failed",
        "transition.started",
        "transition.attempt_failed",
        "transition.started",
        "transition.failed",
    ]
    assert mlflow_client.get_version(unique_name, 2).stage == "None"

    unreachable_mlflow.up()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("retry_transition", str(request.pk), "--as", "admin")
    simple_worker(transitions)

    request.refresh_from_db()
    assert request.execution == Execution.DONE and request.execution_error == ""
    assert mlflow_client.get_version(unique_name, 2).stage == "Production"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_concurrent_final_approvals_make_one_decision_one_job_one_transition(
    mlflow_client, unique_name, policies, rq_queue, simple_worker, settings
):
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = []
    transitions, syncs = rq_queue(jobs.QUEUE), rq_queue(SYNC_QUEUE)
    register_in_mlflow(mlflow_client, unique_name, versions=5)
    sync_registry(model=unique_name, client=mlflow_client)
    content.digest_missing(client=mlflow_client)  # the digest job: requests pin the content
    voters = [User.objects.create_user(f"voter{i}") for i in range(12)]
    Group.objects.get(name="ml-leads").user_set.add(*voters)
    Group.objects.get(name="data-science").user_set.add(*voters)
    requester = policies["requester"]

    for round_number, version in enumerate(range(2, 6), start=1):
        request = opening.request_create(
            model=unique_name, version=version, target="Production", requester=requester
        )
        outcomes = approve_at_once(request.pk, voters)

        # Quorum needs 1 ml-lead and 2 data-science: every voter is in both but counts once, for
        # one group, so 3 votes decide and the 9 others find the request closed.
        assert sorted(set(outcomes)) == ["RequestClosed", "counted"], outcomes
        assert outcomes.count("counted") == 3, f"round {round_number}: {outcomes}"
        assert transitions.job_ids == [jobs.transition_job_id(request)]
        simple_worker(transitions, syncs)
        request.refresh_from_db()
        assert request.decision_reason.startswith("Quorum reached by 3 different people")
        assert (request.decision, request.execution) == ("approved", "done")
        assert AuditEvent.objects.filter(action="request.approved", request=request).count() == 1
        moves = RegistryChange.objects.filter(
            model__name=unique_name, version__version=version, kind=ChangeKind.STAGE_CHANGED
        )
        assert list(moves.values_list("new", flat=True)) == ["Production"]
    assert verification.verify().ok


# -- a transition that happened is done ---------------------------------------------------------


def test_a_failing_follow_up_sync_leaves_the_request_done_and_is_retried_on_its_own(
    approved, promoted, mlflow_client, transitions, syncs, simple_worker, unreachable_mlflow
):
    request = approved(2, "Production")
    simple_worker(transitions)
    unreachable_mlflow.down()  # after the move, before its sync

    simple_worker(syncs)

    request.refresh_from_db()
    assert (request.execution, request.execution_attempts) == (Execution.DONE, 1)
    assert transition_actions(request) == ["transition.started", "transition.done"]
    (sync_job,) = syncs.failed_job_registry.get_job_ids()
    assert syncs.fetch_job(sync_job).func_name == "registry.jobs.sync_model"
    assert SyncRun.objects.filter(model_name=promoted).exclude(error="").count() == 3
    assert transitions.count == 0  # nothing ran the transition again

    unreachable_mlflow.up()
    syncs.fetch_job(sync_job).requeue()
    simple_worker(syncs)

    assert mlflow_client.get_version(promoted, 2).stage == "Production"
    moves = RegistryChange.objects.filter(model__name=promoted, kind=ChangeKind.STAGE_CHANGED)
    assert {(c.version.version, c.new, c.origin) for c in moves} == {
        (2, "Production", "quorum"),
        (1, "Archived", "quorum"),
    }
    assert not AuditEvent.objects.filter(action="registry.out_of_band").exists()
    assert transition_actions(request) == ["transition.started", "transition.done"]


def test_a_sync_long_after_the_move_still_credits_it_to_the_request(
    approved, promoted, transitions, syncs, simple_worker, mlflow_client
):
    request = approved(3, "Production")
    simple_worker(transitions)
    # The follow-up sync never ran (Redis lost it, MLflow was down for hours)...
    syncs.empty()
    TransitionRequest.objects.filter(pk=request.pk).update(
        executed_at=timezone.now() - timedelta(hours=3)
    )

    sync_registry(client=mlflow_client)  # ...and the periodic sync observes the move today.

    caused = {(c.version.version, c.new, c.origin) for c in request.caused_changes.all()}
    assert caused == {(3, "Production", "quorum"), (1, "Archived", "quorum")}
    assert not AuditEvent.objects.filter(action="registry.out_of_band").exists()
    request.refresh_from_db()
    assert not request.awaiting_mirror
    # Once mirrored, that old request explains nothing more: a later move is someone else's.
    mlflow_client.transition_stage(promoted, 2, "Production", archive_existing=True)
    sync_registry(client=mlflow_client)
    assert set(
        AuditEvent.objects.filter(action="registry.out_of_band").values_list("version", flat=True)
    ) == {2, 3}


def test_an_error_that_is_not_mlflow_is_recorded_retried_and_ends_failed_with_mail(
    approved, transitions, simple_worker, cast
):
    request = approved(2, "Production")
    for user in (cast["requester"], cast["admin"]):
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    # A snapshot the job cannot read: a bug, or a row damaged by hand.
    TransitionRequest.objects.filter(pk=request.pk).update(policy_snapshot=["not", "a", "dict"])

    simple_worker(transitions)

    request.refresh_from_db()
    assert (request.execution, request.execution_attempts) == (Execution.FAILED, 3)
    assert request.execution_error == "AttributeError: 'list' object has no attribute 'get'"
    assert transition_actions(request) == [
        *["transition.started", "transition.attempt_failed"] * 2,
        "transition.started",
        "transition.failed",
    ]
    failed = AuditEvent.objects.get(request=request, action="transition.failed")
    assert failed.details["error"] == request.execution_error
    mail = Notification.objects.filter(event=failed, kind=NotificationKind.FAILED)
    assert set(mail.values_list("recipient__username", flat=True)) == {"requester", "admin"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL trigger")
def test_a_database_error_after_the_move_never_moves_mlflow_again(
    approved, promoted, mlflow_client, transitions, syncs, simple_worker, admin_user
):
    request = approved(2, "Production")
    with connection.cursor() as cursor:  # the database refuses to record the request done
        cursor.execute(
            "CREATE FUNCTION refuse_done() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION USING ERRCODE = 'disk_full', MESSAGE = 'No space left on device'; "
            "END $$; "
            "CREATE TRIGGER refuse_done BEFORE UPDATE ON reviews_transitionrequest FOR EACH ROW "
            "WHEN (NEW.execution = 'done') EXECUTE FUNCTION refuse_done();"
        )

    simple_worker(transitions)

    request.refresh_from_db()
    assert request.execution == Execution.FAILED
    assert request.execution_error.startswith("OperationalError: No space left on device")
    assert mlflow_client.get_version(promoted, 2).stage == "Production"

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_done ON reviews_transitionrequest")
    deciding.transition_retry(request_id=request.pk, user=admin_user)
    jobs.enqueue_transition(request.pk, replace=True)
    simple_worker(transitions, syncs)

    request.refresh_from_db()
    assert request.execution == Execution.DONE
    done = AuditEvent.objects.get(request=request, action="transition.done")
    assert done.details["already_at_target"] is True
    moves = RegistryChange.objects.filter(
        model__name=promoted, version__version=2, kind=ChangeKind.STAGE_CHANGED
    )
    assert list(moves.values_list("new", "origin")) == [("Production", "quorum")]


# -- retries, the reconciler's allowance, overdue retries ---------------------------------------


def test_retries_go_on_at_the_last_interval_until_the_window_is_spent(settings):
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = [5, 15, 30]
    settings.QUORUM_TRANSITION_RETRY_WINDOW = 120

    retry = retries.retry_policy()

    assert (retry.max, retry.intervals) == (6, [5, 15, 30, 30, 30, 30])
    settings.QUORUM_TRANSITION_RETRY_WINDOW = 0
    assert retries.retry_policy().intervals == [5, 15, 30]
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = []
    assert retries.retry_policy() is None
