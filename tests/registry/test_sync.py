"""The registry mirror against a real `mlflow server`: full, incremental and one-model syncs, what
each costs in MLflow calls, the sync_registry command, and syncs that run at the same time."""

from __future__ import annotations

import re
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from quorum.localservices import free_port
from registry.mlflow_client import RegistryClient
from registry.mlflow_client import reading as mlflow_reading
from registry.models import (
    ChangeKind,
    ModelVersion,
    RegisteredModel,
    RegistryChange,
    SyncRun,
)
from registry.sync import SyncError, sync_registry
from tests.factories import registry_changes as changes
from tests.mlflow_registry import register_in_mlflow

pytestmark = pytest.mark.django_db


def test_full_sync_mirrors_versions_runs_stages_and_aliases(mlflow_client, unique_name):
    run_ids = register_in_mlflow(mlflow_client, unique_name)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    mlflow_client.set_alias(unique_name, "champion", 2)
    mlflow_client.set_version_tag(unique_name, 2, "validated", "yes")

    result = sync_registry(full=True, client=mlflow_client)

    model = RegisteredModel.objects.get(name=unique_name)
    assert model.aliases == {"champion": 2}
    assert model.tags == {"team": "risk"}
    assert model.description == "fraud scoring"
    v1, v2, v3 = ModelVersion.objects.filter(model=model).order_by("version")
    assert (v1.stage, v2.stage, v3.stage) == ("Production", "None", "None")
    assert v2.aliases == ["champion"] and v1.aliases == [] == v3.aliases
    assert v2.tags == {"validated": "yes"}
    assert v1.run_id == run_ids[0]
    assert v1.metrics == {
        "accuracy": pytest.approx(0.81),
        "f1": pytest.approx(0.71),
        "loss": pytest.approx(0.29),
    }
    assert v1.params == {"alpha": "0.1", "penalty": "l2"}
    assert v1.experiment_id
    assert changes(unique_name, ChangeKind.VERSION_CREATED).count() == 3
    assert result.kind == "full" and result.versions >= 3
    assert re.fullmatch(r"synced \d+ models, \d+ versions, \d+ changes in \d+\.\d\d s", str(result))


def test_full_sync_reads_runs_in_batches_not_one_call_per_version(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=6)
    client = RegistryClient(mlflow_client.tracking_uri)

    result = sync_registry(full=True, client=client)

    # models, versions, experiments, runs: one page each at this size, however many versions.
    assert result.versions >= 6
    assert result.mlflow_calls <= 4


def test_runs_read_by_several_threads_are_the_same_runs_and_every_call_is_counted(
    mlflow_client, unique_name, monkeypatch
):
    run_ids = register_in_mlflow(mlflow_client, unique_name, versions=5)
    monkeypatch.setattr(mlflow_reading, "RUNS_PER_CALL", 2)  # three batches
    one_reader = RegistryClient(mlflow_client.tracking_uri)
    three_readers = RegistryClient(mlflow_client.tracking_uri)

    alone = one_reader.get_runs(run_ids)
    shared = three_readers.get_runs(run_ids, readers=3)

    assert set(alone) == set(run_ids) and shared == alone
    assert three_readers.calls == one_reader.calls == 1 + 3  # experiments, then each batch


def test_no_change_incremental_sync_costs_two_mlflow_calls(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name)
    sync_registry(full=True, client=mlflow_client)
    client = RegistryClient(mlflow_client.tracking_uri)

    result = sync_registry(client=client)

    assert result.kind == "incremental"
    assert result.changes == 0
    assert client.calls == result.mlflow_calls == 2  # the models page, one recent-versions page


def test_incremental_sync_on_an_empty_mirror_is_a_full_one(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=1)

    sync_registry(client=mlflow_client)

    assert ModelVersion.objects.filter(model__name=unique_name).count() == 1


def test_stage_changed_in_mlflow_directly_shows_up_as_a_registry_change(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name)
    sync_registry(full=True, client=mlflow_client)

    mlflow_client.transition_stage(unique_name, 3, "Staging")
    result = sync_registry(client=mlflow_client)

    change = changes(unique_name, ChangeKind.STAGE_CHANGED).get()
    assert (change.version.version, change.old, change.new) == (3, "None", "Staging")
    assert change.sync_run.kind == "incremental"
    assert ModelVersion.objects.get(model__name=unique_name, version=3).stage == "Staging"
    assert result.changes >= 1


def test_archiving_existing_production_is_seen_on_every_version_it_moved(
    mlflow_client, unique_name
):
    register_in_mlflow(mlflow_client, unique_name)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(full=True, client=mlflow_client)

    mlflow_client.transition_stage(unique_name, 2, "Production", archive_existing=True)
    sync_registry(client=mlflow_client)

    moved = {
        (c.version.version, c.old, c.new) for c in changes(unique_name, ChangeKind.STAGE_CHANGED)
    }
    assert moved == {(1, "Production", "Archived"), (2, "None", "Production")}


def test_alias_moved_in_mlflow_is_recorded_on_both_versions(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name)
    mlflow_client.set_alias(unique_name, "champion", 1)
    sync_registry(full=True, client=mlflow_client)

    # Moving an alias bumps no version timestamp: the incremental sync must still see it.
    mlflow_client.set_alias(unique_name, "champion", 2)
    sync_registry(client=mlflow_client)

    removed = changes(unique_name, ChangeKind.ALIAS_REMOVED).get()
    added = changes(unique_name, ChangeKind.ALIAS_ADDED).exclude(sync_run__kind="full").get()
    assert (removed.version.version, removed.old) == (1, "champion")
    assert (added.version.version, added.new) == (2, "champion")
    assert RegisteredModel.objects.get(name=unique_name).aliases == {"champion": 2}
    versions = ModelVersion.objects.filter(model__name=unique_name).order_by("version")
    assert [v.aliases for v in versions] == [[], ["champion"], []]


def test_alias_deleted_in_mlflow_is_removed_from_the_mirror(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    mlflow_client.set_alias(unique_name, "champion", 1)
    sync_registry(full=True, client=mlflow_client)

    mlflow_client.delete_alias(unique_name, "champion")
    sync_registry(client=mlflow_client)

    assert ModelVersion.objects.get(model__name=unique_name, version=1).aliases == []
    assert changes(unique_name, ChangeKind.ALIAS_REMOVED).count() == 1


def test_new_version_is_picked_up_incrementally_with_its_run(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    sync_registry(full=True, client=mlflow_client)
    experiment = mlflow_client.experiment_id("sync-tests")
    run_id = mlflow_client.log_run(
        experiment, run_name="retrained", params={"alpha": 0.5}, metrics={"accuracy": 0.93}
    )
    mlflow_client.create_version(unique_name, source=f"runs:/{run_id}/model", run_id=run_id)

    sync_registry(client=mlflow_client)

    v2 = ModelVersion.objects.get(model__name=unique_name, version=2)
    assert v2.metrics == {"accuracy": pytest.approx(0.93)}
    assert v2.params == {"alpha": "0.5"}
    assert changes(unique_name, ChangeKind.VERSION_CREATED).filter(version=v2).exists()


def test_version_description_edit_is_seen_incrementally(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(full=True, client=mlflow_client)

    mlflow_client.update_version_description(unique_name, 1, "calibrated on Q3 data")
    sync_registry(client=mlflow_client)

    change = changes(unique_name, ChangeKind.DESCRIPTION_CHANGED).get()
    assert (change.version.version, change.old, change.new) == (1, "", "calibrated on Q3 data")


def test_deleted_version_is_marked_deleted_not_dropped(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name)
    sync_registry(full=True, client=mlflow_client)

    mlflow_client.delete_version(unique_name, 2)
    sync_registry(client=mlflow_client)

    v2 = ModelVersion.objects.get(model__name=unique_name, version=2)
    assert v2.deleted
    assert changes(unique_name, ChangeKind.VERSION_DELETED).get().version == v2
    assert ModelVersion.objects.live().filter(model__name=unique_name).count() == 2


def test_deleted_model_is_marked_deleted_with_its_versions(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(full=True, client=mlflow_client)

    mlflow_client.delete_model(unique_name)
    sync_registry(client=mlflow_client)

    assert RegisteredModel.objects.get(name=unique_name).deleted
    assert not ModelVersion.objects.live().filter(model__name=unique_name).exists()
    assert changes(unique_name, ChangeKind.MODEL_DELETED).count() == 1
    assert changes(unique_name, ChangeKind.VERSION_DELETED).count() == 2


def test_model_sync_reads_one_model_completely(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    other = f"{unique_name}-other"
    register_in_mlflow(mlflow_client, other, versions=1)

    result = sync_registry(model=unique_name, client=mlflow_client)

    assert result.kind == "model" and result.models == 1 and result.versions == 2
    assert ModelVersion.objects.filter(model__name=unique_name).count() == 2
    assert not RegisteredModel.objects.filter(name=other).exists()


def test_model_sync_of_a_model_gone_from_mlflow_marks_it_deleted(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    sync_registry(model=unique_name, client=mlflow_client)
    mlflow_client.delete_model(unique_name)

    sync_registry(model=unique_name, client=mlflow_client)

    assert RegisteredModel.objects.get(name=unique_name).deleted


def test_tag_changes_are_recorded_by_a_full_sync(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    sync_registry(full=True, client=mlflow_client)

    mlflow_client.set_version_tag(unique_name, 1, "reviewed", "true")
    sync_registry(full=True, client=mlflow_client)

    change = changes(unique_name, ChangeKind.TAGS_CHANGED).get()
    assert (change.old, change.new) == ({}, {"reviewed": "true"})


def test_hostile_names_and_text_are_stored_verbatim(mlflow_client):
    name = "<img src=x onerror=alert(1)> ünïcode 'quote\""
    register_in_mlflow(mlflow_client, name, versions=1)
    mlflow_client.update_version_description(name, 1, "<script>alert(1)</script>")

    sync_registry(model=name, client=mlflow_client)

    version = ModelVersion.objects.get(model__name=name)
    assert version.description == "<script>alert(1)</script>"


def test_mlflow_down_fails_fast_and_changes_nothing(mlflow_server):
    down = RegistryClient(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(SyncError, match="unreachable|Connection|MLflow"):
        sync_registry(full=True, client=down)

    assert not ModelVersion.objects.exists() and not RegistryChange.objects.exists()
    failed = SyncRun.objects.get()
    assert failed.error and failed.finished_at is not None


def test_sync_registry_command_prints_a_summary_line(
    mlflow_server, mlflow_client, unique_name, capsys
):
    register_in_mlflow(mlflow_client, unique_name, versions=2)

    call_command("sync_registry", "--full", "--no-progress")

    out = capsys.readouterr().out
    assert re.search(r"synced \d+ models, \d+ versions, \d+ changes in \d+\.\d\d s", out)
    assert ModelVersion.objects.filter(model__name=unique_name).count() == 2


def test_sync_registry_command_reports_an_unreachable_mlflow(settings):
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(CommandError, match="sync failed, nothing was changed"):
        call_command("sync_registry", "--no-progress")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_concurrent_syncs_record_each_change_once(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(full=True, client=mlflow_client)
    mlflow_client.transition_stage(unique_name, 2, "Production")
    errors: list[BaseException] = []

    def sync(kind: str) -> None:
        try:
            client = RegistryClient(mlflow_client.tracking_uri)
            if kind == "model":
                sync_registry(model=unique_name, client=client)
            else:
                sync_registry(full=kind == "full", client=client)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=sync, args=(k,)) for k in ["model", "full", "incr"] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert changes(unique_name, ChangeKind.STAGE_CHANGED).count() == 1
    assert ModelVersion.objects.get(model__name=unique_name, version=2).stage == "Production"
