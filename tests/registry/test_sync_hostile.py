"""A hostile or broken registry does not stop the sync (registry/mirror.py, mirror_rows.py,
mirror_store.py): NaN and infinite metrics kept as such, versions and models the database cannot
hold skipped with their reasons and the rest mirrored, and an unexpected error recorded on the
sync's run."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.db import connection

from registry.models import ChangeKind, ModelVersion, RegisteredModel, SyncRun
from registry.sync import SyncError, sync_registry
from tests.factories import registry_changes as changes
from tests.mlflow_registry import (
    UNMIRRORABLE,
    mlflow_of,
    register_in_mlflow,
    register_unmirrorable,
    register_with_metrics,
)

pytestmark = pytest.mark.django_db


# -- hostile registries ------------------------------------------------------------------------


def test_nan_and_infinite_metrics_are_mirrored_in_the_mirrors_own_spelling(
    mlflow_client, unique_name
):
    register_with_metrics(
        mlflow_client,
        unique_name,
        {"accuracy": float("nan"), "loss": float("inf"), "margin": float("-inf"), "f1": 0.7},
    )

    sync_registry(full=True, client=mlflow_client)

    version = ModelVersion.objects.get(model__name=unique_name)
    assert version.metrics == {
        "accuracy": "NaN",
        "loss": "Infinity",
        "margin": "-Infinity",
        "f1": pytest.approx(0.7),
    }


def test_a_nan_metric_does_not_look_changed_on_every_sync(mlflow_client, unique_name):
    register_with_metrics(mlflow_client, unique_name, {"accuracy": float("nan")})
    sync_registry(full=True, client=mlflow_client)

    sync_registry(full=True, client=mlflow_client)
    sync_registry(model=unique_name, client=mlflow_client)

    assert not changes(unique_name, ChangeKind.METRICS_CHANGED).exists()


def test_a_metric_turning_nan_is_recorded_as_a_metrics_change(mlflow_client, unique_name):
    (run_id,) = register_with_metrics(mlflow_client, unique_name, {"accuracy": 0.9})
    sync_registry(full=True, client=mlflow_client)

    mlflow_of(mlflow_client).log_metric(run_id, "accuracy", float("nan"), step=1)
    sync_registry(full=True, client=mlflow_client)

    change = changes(unique_name, ChangeKind.METRICS_CHANGED).get()
    assert change.old == {"accuracy": pytest.approx(0.9)} and change.new == {"accuracy": "NaN"}


@pytest.mark.parametrize("kind", ["full", "incremental", "model"])
def test_unmirrorable_versions_are_skipped_with_their_reasons_and_the_rest_is_mirrored(
    mlflow_client, unique_name, kind
):
    register_in_mlflow(mlflow_client, f"{unique_name}-healthy", versions=1)
    sync_registry(full=True, client=mlflow_client)  # the mirror is not empty: incremental is one
    register_unmirrorable(mlflow_client, unique_name)
    mlflow_client.transition_stage(f"{unique_name}-healthy", 1, "Staging")

    if kind == "model":
        result = sync_registry(model=unique_name, client=mlflow_client)
    else:
        result = sync_registry(full=kind == "full", client=mlflow_client)

    mirrored = {v.version: v for v in ModelVersion.objects.filter(model__name=unique_name)}
    # v2's run cannot be read: the version is mirrored (its stage matters), without metrics.
    assert sorted(mirrored) == [1, 2]
    assert mirrored[1].metrics == {"accuracy": pytest.approx(0.9)} and mirrored[2].metrics == {}
    if kind != "model":
        assert ModelVersion.objects.get(model__name=f"{unique_name}-healthy").stage == "Staging"
    # The session's MLflow server holds other tests' poisoned models too.
    ours = [item for item in result.skipped if item["model"] == unique_name]
    reasons = {item["version"]: item["reason"] for item in ours}
    assert set(reasons) == set(UNMIRRORABLE) and len(ours) == 4
    assert "both quote characters" in reasons[2]
    assert [item["version"] for item in ours if item.get("partial")] == [2]
    assert reasons[2].startswith("mirrored without its run's metrics and params")
    assert "run id field is 100 characters long; the mirror holds at most 64" in reasons[3]
    assert "tags field holds a NUL character" in reasons[4]
    assert "description field holds a NUL character" in reasons[5]
    run = SyncRun.objects.order_by("-id").first()
    assert run.error == "" and run.finished_at is not None
    assert run.skipped == result.skipped and run.skipped_count == len(result.skipped)
    not_mirrored = len([item for item in result.skipped if not item.get("partial")])
    assert f"; {not_mirrored} not mirrored" in str(result)
    assert f"; {result.partial} without their run" in str(result)


def test_models_the_mirror_cannot_hold_are_skipped_not_taken_for_deleted(
    mlflow_client, unique_name
):
    too_long = unique_name + "-" + "x" * 300
    with_nul = unique_name + "-nul\x00name"
    mlflow = mlflow_of(mlflow_client)
    for name in (too_long, with_nul):
        mlflow.create_registered_model(name)
        mlflow.create_model_version(name, "s3://models/poisoned")
    register_in_mlflow(mlflow_client, unique_name, versions=1)

    result = sync_registry(full=True, client=mlflow_client)
    again = sync_registry(full=True, client=mlflow_client)
    incremental = sync_registry(client=mlflow_client)
    one = [sync_registry(model=name, client=mlflow_client) for name in (too_long, with_nul)]

    reasons = {item["model"]: item["reason"] for item in again.skipped}
    assert reasons[too_long[:299] + "…"].startswith("its name field is 3")
    assert "NUL character" in reasons[unique_name + "-nul\\x00name"]
    assert result.skipped == again.skipped
    assert {item["model"] for item in incremental.skipped} >= set(reasons) - {
        item["model"] for item in result.skipped if not item["model"].startswith(unique_name)
    }
    assert [len(r.skipped) for r in one] == [1, 1]
    assert not SyncRun.objects.exclude(error="").exists()
    assert RegisteredModel.objects.filter(name=unique_name, deleted=False).exists()
    assert not RegisteredModel.objects.filter(name__startswith=unique_name + "-").exists()


def test_what_the_database_refuses_after_the_checks_is_skipped_version_by_version(unique_name):
    # A lone surrogate passes every check but cannot be encoded for the database: the bulk write
    # fails, and the retry one version at a time writes every other version.
    from registry.mirror import apply_mlflow_state
    from registry.mlflow_client import MlflowModel, MlflowVersion

    model = MlflowModel(unique_name, "", {}, {}, 1, 1)
    versions = [
        MlflowVersion(unique_name, n, "None", "READY", "s3://m", "", text, {}, (), 1, 1)
        for n, text in [(1, "fine"), (2, "lone \ud800 surrogate"), (3, "fine too")]
    ]

    applied = apply_mlflow_state(
        models={unique_name: model},
        versions=versions,
        runs={},
        complete_models={unique_name},
        all_models_listed=False,
        sync_run=SyncRun.objects.create(kind="model"),
    )

    mirrored = ModelVersion.objects.filter(model__name=unique_name)
    assert sorted(mirrored.values_list("version", flat=True)) == [1, 3]
    assert [(s["version"], s["reason"][:25]) for s in applied.skipped] == [
        (2, "the database refused it: ")
    ]
    created = changes(unique_name, ChangeKind.VERSION_CREATED)
    assert sorted(created.values_list("version__version", flat=True)) == [1, 3]


def test_the_dropped_synced_at_columns_take_the_mirrors_rows_until_the_next_release(unique_name):
    # The models no longer have synced_at; its columns stay a release, for the code still
    # serving while `migrate` runs (docs/deploy.md). The mirror's rows must go in without them.
    from registry.mirror import apply_mlflow_state
    from registry.mlflow_client import MlflowModel, MlflowVersion

    apply_mlflow_state(
        models={unique_name: MlflowModel(unique_name, "", {}, {"champion": 1}, 1, 1)},
        versions=[MlflowVersion(unique_name, 1, "None", "READY", "s3://m", "", "", {}, (), 1, 1)],
        runs={},
        complete_models={unique_name},
        all_models_listed=False,
        sync_run=SyncRun.objects.create(kind="model"),
    )

    version = ModelVersion.objects.get(model__name=unique_name)
    assert version.aliases == ["champion"]
    for table, pk in [
        (RegisteredModel._meta.db_table, version.model_id),
        (ModelVersion._meta.db_table, version.pk),
    ]:
        with connection.cursor() as cursor:
            columns = connection.introspection.get_table_description(cursor, table)
            cursor.execute(f"SELECT synced_at FROM {table} WHERE id = %s", [pk])  # noqa: S608
            assert cursor.fetchone() == (None,)
        assert [c.null_ok for c in columns if c.name == "synced_at"] == [True]


def test_an_unexpected_error_is_recorded_on_the_sync_run_with_its_finish_time(
    mlflow_client, unique_name
):
    from registry.signals import changes_observed

    register_in_mlflow(mlflow_client, unique_name, versions=1)

    def broken_receiver(**kwargs):
        raise RuntimeError("a receiver broke")

    changes_observed.connect(broken_receiver, dispatch_uid="test-broken")
    try:
        with pytest.raises(SyncError, match="RuntimeError: a receiver broke"):
            sync_registry(full=True, client=mlflow_client)
    finally:
        changes_observed.disconnect(dispatch_uid="test-broken")

    failed = SyncRun.objects.get()
    assert failed.error == "RuntimeError: a receiver broke" and failed.finished_at is not None
    assert not ModelVersion.objects.filter(model__name=unique_name).exists()


def test_sync_registry_command_lists_what_it_could_not_mirror(
    mlflow_server, mlflow_client, unique_name, capsys
):
    register_unmirrorable(mlflow_client, unique_name)

    call_command("sync_registry", "--full", "--no-progress")

    out = capsys.readouterr().out
    assert re.search(r"; \d+ not mirrored", out)
    assert f"not mirrored: {unique_name} v4: its tags field holds a NUL character" in out
