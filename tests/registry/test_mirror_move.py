"""A move recorded from what it changed (`registry.sync.mirror_move`), as a sync records it, against
a real `mlflow server`: only the versions given, under a record of its own that is no sync of the
registry, and never behind a running sync."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from django.db import connection, transaction

from registry.models import ChangeKind, ModelVersion, RegisteredModel, SyncKind, SyncLock, SyncRun
from registry.sync import mirror_move, sync_registry
from registry.sync_status import failure_streak, sync_status
from tests.factories import registry_changes as changes
from tests.mlflow_registry import register_in_mlflow
from tests.waiting import join_all

pytestmark = pytest.mark.django_db


def test_only_the_versions_given_are_recorded_under_a_record_of_the_move(
    mlflow_client, unique_name
):
    register_in_mlflow(mlflow_client, unique_name, versions=3)
    mlflow_client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=mlflow_client)
    synced = sync_status().latest
    holder = mlflow_client.get_version(unique_name, 1)
    mlflow_client.set_version_tag(unique_name, 2, "reviewed", "no")  # no part of the move
    moved = mlflow_client.transition_stage(unique_name, 3, "Production", archive_existing=True)

    result = mirror_move(unique_name, [moved, replace(holder, stage="Archived")])

    assert result is not None and (result.versions, result.changes) == (2, 2)
    rows = ModelVersion.objects.filter(model__name=unique_name)
    mirror = {v.version: (v.stage, v.tags) for v in rows}
    assert mirror == {1: ("Archived", {}), 2: ("None", {}), 3: ("Production", {})}
    record = SyncRun.objects.get(model_name=unique_name, kind=SyncKind.MOVE)
    assert (record.finished_at is not None, record.error, record.mlflow_calls) == (True, "", 0)
    moves = changes(unique_name, ChangeKind.STAGE_CHANGED).filter(sync_run=record)
    assert {(c.version.version, c.old, c.new) for c in moves} == {
        (3, "None", "Production"),
        (1, "Production", "Archived"),
    }
    # Recording a move reads nothing of the registry: it is no sync the models page could show.
    assert sync_status().latest == synced and failure_streak().failures == 0

    sync_registry(model=unique_name, client=mlflow_client)  # what the move left to a sync

    assert changes(unique_name, ChangeKind.STAGE_CHANGED).count() == 2  # no move more
    assert ModelVersion.objects.get(model__name=unique_name, version=2).tags == {"reviewed": "no"}


def test_an_alias_move_takes_the_alias_from_the_version_that_held_it(mlflow_client, unique_name):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    mlflow_client.set_alias(unique_name, "champion", 1)
    sync_registry(model=unique_name, client=mlflow_client)
    model = mlflow_client.get_model(unique_name)
    version = mlflow_client.get_version(unique_name, 2)
    mlflow_client.set_alias(unique_name, "champion", 2)

    mirror_move(unique_name, [version], model=replace(model, aliases={"champion": 2}))

    assert RegisteredModel.objects.get(name=unique_name).aliases == {"champion": 2}
    aliases = dict(
        ModelVersion.objects.filter(model__name=unique_name).values_list("version", "aliases")
    )
    assert aliases == {1: [], 2: ["champion"]}
    moved = changes(unique_name).filter(sync_run__kind=SyncKind.MOVE)
    assert {(c.version.version, c.kind) for c in moved} == {
        (2, ChangeKind.ALIAS_ADDED),
        (1, ChangeKind.ALIAS_REMOVED),
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_a_move_is_not_recorded_behind_a_running_sync(mlflow_client, unique_name):
    """A transition job records its move this way: behind a sync stuck reading MLflow it must
    not wait (its follow-up sync mirrors the move later), and the sync, which may have read
    MLflow before the move, must not write after it."""
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    sync_registry(model=unique_name, client=mlflow_client)
    moved = mlflow_client.transition_stage(unique_name, 1, "Staging")
    SyncLock.objects.get_or_create(name="registry")
    holding, release = threading.Event(), threading.Event()

    def running_sync() -> None:  # what a sync holds while it reads MLflow
        try:
            with transaction.atomic():
                SyncLock.objects.select_for_update().get(name="registry")
                holding.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    holder = threading.Thread(target=running_sync)
    holder.start()
    try:
        assert holding.wait(timeout=60)
        runs = SyncRun.objects.count()
        assert mirror_move(unique_name, [moved]) is None
        assert SyncRun.objects.count() == runs
        assert ModelVersion.objects.get(model__name=unique_name, version=1).stage == "None"
    finally:
        release.set()
        join_all([holder], timeout=60, message="the sync holding the registry")

    result = mirror_move(unique_name, [moved])  # free now: it records
    assert result is not None and result.changes == 1
    assert ModelVersion.objects.get(model__name=unique_name, version=1).stage == "Staging"
