"""`out_of_band: revert` with a real `mlflow server`, real Redis and a worker running the jobs
(reviews/execution/reverts.py): direct stage and alias moves are undone, audited and mailed, also
within seconds through MLflow's webhook and on versions registered since the last sync; a revert
is never reverted."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from registry.models import ChangeOrigin, ModelVersion, RegisteredModel, RegistryChange
from reviews.audit import verification
from reviews.insight.holder_history import holder_history
from reviews.models import (
    ApprovalPolicy,
    AuditEvent,
    Notification,
    NotificationKind,
    OutOfBandRevert,
    RevertState,
)
from tests.factories import audit_actions as actions
from tests.mail import rendered_mail as audit_mail
from tests.mlflow_registry import mlflow_stages as stages
from tests.mlflow_registry import register_in_mlflow
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db


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
