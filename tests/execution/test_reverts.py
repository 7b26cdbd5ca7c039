"""`out_of_band: revert` with a real `mlflow server`, real Redis and a worker running the jobs:
direct stage and alias moves are undone, audited and mailed; Quorum's own transitions win; a
revert is never reverted; a failing revert ends recorded, not retried for ever; `flag` is unchanged.
"""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from registry.models import ChangeOrigin, ModelVersion, RegisteredModel, RegistryChange
from registry.sync import sync_registry
from reviews.audit import verification
from reviews.execution import reconciler, reverts
from reviews.insight.holder_history import holder_history
from reviews.models import (
    ApprovalPolicy,
    AuditEvent,
    Execution,
    Notification,
    NotificationKind,
    OutOfBandRevert,
    RevertState,
    TransitionRequest,
)
from tests.factories import register_in_mlflow
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def reverting(promoted, admin_user):
    """`promoted` (v1 in Production) under a production policy (Production, @champion) that
    reverts out-of-band moves; staging only flags them. The admin is staff with an address."""
    ApprovalPolicy.objects.filter(name="production").update(out_of_band="revert")
    admin_user.email = "admin@example.com"
    admin_user.save(update_fields=["email"])
    return promoted


@pytest.fixture
def sync_observes(mlflow_client, django_capture_on_commit_callbacks):
    """`sync_observes(model=None)`: a sync (incremental, or of one model), its after-commit work
    (queuing reverts) run as a commit would."""

    def run(model: str | None = None):
        with django_capture_on_commit_callbacks(execute=True):
            return sync_registry(model=model, client=mlflow_client)

    return run


def stages(client, name: str) -> dict[int, str]:
    return {v.version: v.stage for v in client.list_versions(name)}


def actions(name: str, prefix: str) -> list[str]:
    events = AuditEvent.objects.filter(model_name=name, action__startswith=prefix)
    return list(events.order_by("sequence").values_list("action", flat=True))


def test_a_direct_stage_move_into_production_is_reverted_audited_mailed_and_shown(
    reverting, mlflow_client, transitions, syncs, simple_worker, sync_observes, client, admin_user
):
    # Someone promotes v2 in MLflow directly, archiving v1 as MLflow's archive_existing does.
    mlflow_client.transition_stage(reverting, 2, "Production", archive_existing=True)
    sync_observes()
    assert actions(reverting, "registry.out_of_band") == ["registry.out_of_band"] * 2
    revert = OutOfBandRevert.objects.get(model__name=reverting)
    assert revert.state == RevertState.QUEUED and revert.changes.count() == 2

    simple_worker(transitions)

    # The intruder is back where it was, and the previous holder back in Production.
    assert stages(mlflow_client, reverting) == {1: "Production", 2: "None", 3: "None"}
    revert.refresh_from_db()
    assert revert.state == RevertState.DONE and revert.attempts == 1
    event = AuditEvent.objects.get(action="out_of_band.reverted", model_name=reverting)
    assert event.details["moves"] == [
        "v2 moved back from Production to None",
        "v1 moved back from Archived to Production",
    ]
    mail = Notification.objects.get(event=event)
    assert (mail.kind, mail.recipient) == (NotificationKind.REVERTED, admin_user)
    rendered = audit_mail(event, NotificationKind.REVERTED)
    assert "v1 moved back from Archived to Production" in rendered["text"]
    assert rendered["subject"] == f"[Quorum] Out-of-band move of {reverting} reverted in MLflow"

    # The follow-up sync mirrors the revert as Quorum's own: nothing new is flagged or reverted.
    simple_worker(syncs)
    sync_observes()
    mirror = dict(
        ModelVersion.objects.filter(model__name=reverting).values_list("version", "stage")
    )
    assert mirror == {1: "Production", 2: "None", 3: "None"}
    assert {(c.version.version, c.old, c.new) for c in revert.caused_changes.all()} == {
        (2, "Production", "None"),
        (1, "Archived", "Production"),
    }
    assert set(revert.caused_changes.values_list("origin", flat=True)) == {ChangeOrigin.QUORUM}
    assert actions(reverting, "registry.out_of_band") == ["registry.out_of_band"] * 2
    assert OutOfBandRevert.objects.filter(model__name=reverting).count() == 1
    assert transitions.count == 0
    assert verification.verify().ok

    client.force_login(admin_user)
    page = client.get(reverse("registry:model_detail", args=[reverting])).content.decode()
    assert "Changed in MLflow outside Quorum" in page
    assert page.count("reverted by Quorum") == 2


def audit_mail(event: AuditEvent, kind: str) -> dict[str, str]:
    from reviews import notify

    return notify.render(event, kind)


def test_a_direct_move_of_the_holder_out_of_production_is_reverted(
    reverting, mlflow_client, transitions, simple_worker, sync_observes
):
    mlflow_client.transition_stage(reverting, 1, "Staging")
    sync_observes()

    simple_worker(transitions)

    assert stages(mlflow_client, reverting)[1] == "Production"
    event = AuditEvent.objects.get(action="out_of_band.reverted", model_name=reverting)
    assert event.details["moves"] == ["v1 moved back from Staging to Production"]


def test_a_direct_alias_move_is_reverted_to_the_previous_holder(
    reverting, mlflow_client, transitions, syncs, simple_worker, sync_observes
):
    mlflow_client.set_alias(reverting, "champion", 1)
    ApprovalPolicy.objects.filter(name="production").update(out_of_band="flag")
    sync_observes(reverting)  # @champion on v1 is where the mirror starts from
    ApprovalPolicy.objects.filter(name="production").update(out_of_band="revert")

    mlflow_client.set_alias(reverting, "champion", 3)
    sync_observes(reverting)
    simple_worker(transitions)

    assert mlflow_client.get_model(reverting).aliases == {"champion": 1}
    event = AuditEvent.objects.get(action="out_of_band.reverted", model_name=reverting)
    assert event.details["moves"] == ["@champion moved back from v3 to v1"]
    assert Notification.objects.filter(event=event, kind=NotificationKind.REVERTED).exists()

    simple_worker(syncs)
    sync_observes(reverting)
    assert ModelVersion.objects.get(model__name=reverting, version=1).aliases == ["champion"]
    assert actions(reverting, "out_of_band.") == ["out_of_band.reverted"]


def test_an_alias_nobody_held_is_deleted_again(
    reverting, mlflow_client, transitions, simple_worker, sync_observes
):
    mlflow_client.set_alias(reverting, "champion", 2)
    sync_observes(reverting)

    simple_worker(transitions)

    assert mlflow_client.get_model(reverting).aliases == {}
    event = AuditEvent.objects.get(action="out_of_band.reverted", model_name=reverting)
    assert event.details["moves"] == ["@champion removed from v2 (no version held it before)"]


@pytest.mark.django_db(transaction=True)
def test_a_direct_alias_move_is_reverted_within_seconds_through_mlflows_webhook(
    live_server, settings, rq_queue, simple_worker, mlflow_client, webhook_name, promoted
):
    settings.MLFLOW_WEBHOOK_SECRET = "webhook-secret-for-revert-tests"
    syncs, transitions = rq_queue("sync"), rq_queue("transitions")
    ApprovalPolicy.objects.filter(name="production").update(out_of_band="revert")
    call_command(
        "register_mlflow_webhook",
        live_server.url + "/webhooks/mlflow",
        "--name",
        webhook_name,
        verbosity=0,
    )

    started = time.monotonic()
    mlflow_client.set_alias(promoted, "champion", 2)

    # No periodic sync runs here: only the alias webhook's delivery leads to the revert.
    def reverted() -> bool:
        simple_worker(syncs, transitions)
        return OutOfBandRevert.objects.filter(model__name=promoted, state="done").exists()

    wait_for(reverted, timeout=30, interval=0.2, message="the alias's revert to be done")

    assert mlflow_client.get_model(promoted).aliases == {}
    assert time.monotonic() - started < 30
    assert AuditEvent.objects.filter(action="out_of_band.reverted", model_name=promoted).exists()


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


# -- holdings first seen on a version created while Quorum watched ---------------------------


def began(name: str, target: str) -> list[str]:
    """How each holding of `target` began, oldest first (`reviews.insight.holder_history`)."""
    model = RegisteredModel.objects.get(name=name)
    return [entry.began.kind for entry in holder_history(model).of(target)]


def test_an_alias_set_on_a_model_registered_since_the_last_sync_is_out_of_band_and_reverted(
    policies, mlflow_client, unique_name, transitions, syncs, simple_worker, sync_observes
):
    ApprovalPolicy.objects.filter(name="production").update(out_of_band="revert")
    sync_observes()  # Quorum watches the whole registry from here on
    # Registered a moment ago, and @champion set in MLflow before any sync saw the model.
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    mlflow_client.set_alias(unique_name, "champion", 1)

    sync_observes()

    [event] = AuditEvent.objects.filter(action="registry.out_of_band", model_name=unique_name)
    assert (event.version, event.details) == (
        1,
        {"change": "alias_added", "old": None, "new": "champion"},
    )
    assert began(unique_name, "@champion") == ["out_of_band"]  # not "already there"
    revert = OutOfBandRevert.objects.get(model__name=unique_name)
    assert revert.state == RevertState.QUEUED

    simple_worker(transitions)

    assert mlflow_client.get_model(unique_name).aliases == {}
    reverted = AuditEvent.objects.get(action="out_of_band.reverted", model_name=unique_name)
    assert reverted.details["moves"] == ["@champion removed from v1 (no version held it before)"]
    # The follow-up sync credits the removal to the revert: nothing more is flagged.
    simple_worker(syncs)
    sync_observes()
    assert ModelVersion.objects.get(model__name=unique_name, version=1).aliases == []
    assert actions(unique_name, "registry.out_of_band") == ["registry.out_of_band"]
    assert OutOfBandRevert.objects.filter(model__name=unique_name).count() == 1


def test_a_new_version_moved_into_production_before_the_sync_saw_it_is_reverted(
    reverting, mlflow_client, transitions, simple_worker, sync_observes
):
    sync_observes()  # Quorum watches the whole registry from here on
    mlflow_client.create_version(reverting, source="s3://models/v4", run_id=None)
    mlflow_client.transition_stage(reverting, 4, "Production", archive_existing=True)

    sync_observes()

    flagged = RegistryChange.objects.filter(
        model__name=reverting, kind="stage_changed", origin=ChangeOrigin.OUT_OF_BAND
    )
    assert sorted(flagged.values_list("version__version", "old", "new")) == [
        (1, "Production", "Archived"),
        (4, "None", "Production"),
    ]
    assert began(reverting, "Production") == ["first_seen", "out_of_band"]

    simple_worker(transitions)

    assert stages(mlflow_client, reverting) == {1: "Production", 2: "None", 3: "None", 4: "None"}


def test_an_alias_already_set_when_quorum_starts_watching_is_already_there(
    policies, mlflow_client, unique_name, transitions, sync_observes
):
    ApprovalPolicy.objects.filter(name="production").update(out_of_band="revert")
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    mlflow_client.set_alias(unique_name, "champion", 1)

    sync_observes()  # the first sync of the whole registry: what it finds predates Quorum

    assert began(unique_name, "@champion") == ["first_seen"]
    assert not AuditEvent.objects.filter(action="registry.out_of_band").exists()
    assert not OutOfBandRevert.objects.exists() and transitions.count == 0
    assert mlflow_client.get_model(unique_name).aliases == {"champion": 1}
