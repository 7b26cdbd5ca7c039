"""What `out_of_band: revert` leaves alone, and reverts that fail (reviews/execution/reverts.py,
real MLflow, Redis and worker): Quorum's own transitions win; a move changed again before the
revert ran stays; a failing revert ends recorded, not retried for ever, and a lost one is queued
again by the reconciler; `flag` only flags."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import ChangeOrigin, RegistryChange
from reviews.execution import reconciler, reverts
from reviews.models import (
    AuditEvent,
    Execution,
    Notification,
    NotificationKind,
    OutOfBandRevert,
    RevertState,
    TransitionRequest,
)
from tests.factories import audit_actions as actions
from tests.mail import rendered_mail as audit_mail
from tests.mlflow_registry import mlflow_stages as stages

pytestmark = pytest.mark.django_db


def test_no_revert_while_quorums_own_transition_of_the_target_is_queued(
    reverting, approved, mlflow_client, transitions, simple_worker, sync_observes
):
    request = approved(3, "Production")  # its job waits in the queue
    mlflow_client.transition_stage(reverting, 2, "Production")
    sync_observes()
    revert = OutOfBandRevert.objects.get(model__name=reverting)

    reverts.revert_out_of_band(revert.pk)

    assert stages(mlflow_client, reverting) == {1: "Production", 2: "Production", 3: "None"}
    revert.refresh_from_db()
    assert revert.state == RevertState.SKIPPED and revert.moves == []
    assert revert.skipped == [
        "v2 moved from None to Production: left to Quorum's own transition to Production "
        f"(request #{request.pk})."
    ]
    assert actions(reverting, "out_of_band.") == ["out_of_band.revert_skipped"]
    assert not Notification.objects.filter(kind=NotificationKind.REVERTED).exists()

    # Quorum's transition runs (the revert's queued job finds it skipped) and decides the stage.
    simple_worker(transitions)
    assert stages(mlflow_client, reverting) == {1: "Archived", 2: "Archived", 3: "Production"}


def test_no_revert_while_quorums_own_transition_of_the_target_is_running(
    reverting, approved, mlflow_client, sync_observes
):
    request = approved(3, "Production")
    # Its worker has started it (and may be moving MLflow right now).
    TransitionRequest.objects.filter(pk=request.pk).update(
        execution=Execution.RUNNING, execution_started_at=timezone.now()
    )
    mlflow_client.transition_stage(reverting, 2, "Production")
    sync_observes()
    revert = OutOfBandRevert.objects.get(model__name=reverting)

    reverts.revert_out_of_band(revert.pk)

    assert stages(mlflow_client, reverting)[2] == "Production"
    revert.refresh_from_db()
    assert revert.state == RevertState.SKIPPED


def test_a_target_quorum_moved_since_the_intrusion_is_left_to_quorum(
    reverting, approved, mlflow_client, transitions, simple_worker, sync_observes
):
    request = approved(3, "Production")
    mlflow_client.transition_stage(reverting, 2, "Production")
    sync_observes()
    revert = OutOfBandRevert.objects.get(model__name=reverting)
    # Quorum's job has carried the request out by the time the revert runs.
    simple_worker(transitions, max_jobs=1)
    request.refresh_from_db()
    assert request.execution == "done"

    reverts.revert_out_of_band(revert.pk)

    assert stages(mlflow_client, reverting)[3] == "Production"
    revert.refresh_from_db()
    assert revert.state == RevertState.SKIPPED
    assert (
        f"left to Quorum's own transition to Production (request #{request.pk})"
        in (revert.skipped[0])
    )


def test_a_revert_that_keeps_failing_is_recorded_once_and_not_retried(
    reverting,
    mlflow_client,
    transitions,
    simple_worker,
    sync_observes,
    unreachable_mlflow,
    monkeypatch,
    client,
    admin_user,
):
    monkeypatch.setattr(reverts, "RETRY_INTERVALS", [0, 0])  # three attempts, no waiting
    mlflow_client.transition_stage(reverting, 2, "Production")
    sync_observes()
    unreachable_mlflow.down()

    simple_worker(transitions)

    revert = OutOfBandRevert.objects.get(model__name=reverting)
    assert revert.state == RevertState.FAILED and revert.attempts == 3
    assert revert.error
    failed = AuditEvent.objects.get(action="out_of_band.revert_failed", model_name=reverting)
    assert failed.details["attempts"] == 3
    assert Notification.objects.filter(event=failed, kind=NotificationKind.REVERT_FAILED).exists()
    assert "Could not revert" in audit_mail(failed, NotificationKind.REVERT_FAILED)["subject"]
    client.force_login(admin_user)
    page = client.get(reverse("registry:model_detail", args=[reverting])).content.decode()
    assert "revert failed" in page

    # Nothing tries it again: not the reconciler, not a second run of its job.
    unreachable_mlflow.up()
    monkeypatch.setattr(reverts, "LOST_AFTER", reverts.LOST_AFTER * 0)
    assert reconciler.reconcile()["reverts_requeued"] == 0
    assert reverts.revert_out_of_band(revert.pk) == f"revert #{revert.pk} is failed: nothing to do"
    assert transitions.count == 0
    assert stages(mlflow_client, reverting)[2] == "Production"


def test_a_revert_whose_job_was_lost_is_queued_again_by_the_reconciler(
    reverting, mlflow_client, transitions, simple_worker, sync_observes, monkeypatch
):
    mlflow_client.transition_stage(reverting, 2, "Production")
    sync_observes()
    transitions.empty()  # Redis lost the job
    monkeypatch.setattr(reverts, "LOST_AFTER", reverts.LOST_AFTER * 0)

    assert reconciler.reconcile()["reverts_requeued"] == 1
    simple_worker(transitions)

    assert stages(mlflow_client, reverting)[2] == "None"


def test_a_move_changed_again_before_the_revert_ran_is_left_as_it_is(
    reverting, mlflow_client, transitions, simple_worker, sync_observes
):
    mlflow_client.transition_stage(reverting, 2, "Production")
    sync_observes()
    mlflow_client.transition_stage(reverting, 2, "Staging")  # before the worker got to it

    simple_worker(transitions)

    assert stages(mlflow_client, reverting)[2] == "Staging"
    revert = OutOfBandRevert.objects.get(model__name=reverting)
    assert revert.skipped == [
        "v2 moved from None to Production: v2 is in Staging now; left as it is."
    ]


def test_with_flag_an_out_of_band_move_is_only_flagged(
    promoted, mlflow_client, transitions, sync_observes
):
    mlflow_client.transition_stage(promoted, 2, "Production", archive_existing=True)

    sync_observes()

    assert actions(promoted, "registry.out_of_band") == ["registry.out_of_band"] * 2
    assert not OutOfBandRevert.objects.exists()
    assert transitions.count == 0
    assert stages(mlflow_client, promoted) == {1: "Archived", 2: "Production", 3: "None"}
    flagged = RegistryChange.objects.filter(
        model__name=promoted, kind="stage_changed", origin=ChangeOrigin.OUT_OF_BAND
    )
    assert set(flagged.values_list("version__version", flat=True)) == {1, 2}


def test_a_move_of_a_target_whose_policy_flags_is_not_reverted(
    reverting, mlflow_client, transitions, sync_observes
):
    mlflow_client.transition_stage(reverting, 3, "Staging")  # staging only flags

    sync_observes()

    assert not OutOfBandRevert.objects.exists()
    assert transitions.count == 0
