"""The registry's RQ jobs, run by a real worker (in this process) against real Redis and MLflow."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django_rq.cron import DjangoCronScheduler

from registry.jobs import (
    PENDING_TTL_SECONDS,
    enqueue_model_sync,
    pending_marker,
    sync_full,
    sync_incremental,
    sync_model,
)
from registry.models import ModelVersion, RegisteredModel
from registry.signals import changes_observed
from tests.mlflow_registry import register_in_mlflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def sync_queue(rq_queue):
    return rq_queue("sync")


def queued(queue, name: str) -> list:
    return [job for job in queue.get_jobs() if job.args == (name,)]


def test_a_burst_of_model_syncs_collapses_into_one_queued_job(sync_queue, unique_name):
    results = [enqueue_model_sync(unique_name) for _ in range(5)]

    assert results == [True, False, False, False, False]
    jobs = queued(sync_queue, unique_name)
    assert len(jobs) == 1 and jobs[0].func is sync_model
    assert sync_queue.count == 1


def test_a_sync_whose_job_was_lost_does_not_block_the_next_one(sync_queue, unique_name):
    assert enqueue_model_sync(unique_name)
    sync_queue.empty()  # the queued job is lost (an admin emptied the queue, Redis was restored)

    assert enqueue_model_sync(unique_name) is True
    (job,) = queued(sync_queue, unique_name)
    assert sync_queue.connection.get(pending_marker(unique_name)).decode() == job.id
    assert enqueue_model_sync(unique_name) is False  # and the new one absorbs the next


def test_each_model_gets_its_own_job_whatever_characters_its_name_holds(sync_queue, unique_name):
    names = [unique_name, f"{unique_name}/fraud scoring 'v2' \"beta\" é:*", f"{unique_name}-other"]

    assert [enqueue_model_sync(name) for name in names] == [True, True, True]
    assert sync_queue.count == 3
    for job in sync_queue.get_jobs():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", job.id)


def test_the_pending_marker_expires_so_a_lost_job_cannot_block_syncs_forever(
    sync_queue, unique_name
):
    enqueue_model_sync(unique_name)

    assert 0 < sync_queue.connection.ttl(pending_marker(unique_name)) <= PENDING_TTL_SECONDS


def test_a_change_during_a_running_sync_queues_a_new_job(
    sync_queue, simple_worker, mlflow_server, mlflow_client, unique_name
):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    assert enqueue_model_sync(unique_name)
    (running,) = queued(sync_queue, unique_name)
    # Called while the job runs, after it read MLflow: stands for a webhook arriving mid-sync.
    during_run = []

    def webhook_arrives(sender, changes, **kwargs):
        during_run.append(enqueue_model_sync(unique_name))

    changes_observed.connect(webhook_arrives)
    try:
        simple_worker(sync_queue, max_jobs=1)
    finally:
        changes_observed.disconnect(webhook_arrives)

    assert running.get_status(refresh=True) == "finished"
    assert ModelVersion.objects.filter(model__name=unique_name).count() == 2
    assert during_run == [True]
    # The one that arrived mid-run waits; later deliveries collapse into it.
    (waiting,) = queued(sync_queue, unique_name)
    assert waiting.id != running.id
    assert enqueue_model_sync(unique_name) is False


def test_an_older_job_leaves_the_marker_of_a_newer_queued_one_alone(
    sync_queue, simple_worker, mlflow_server, unique_name
):
    assert enqueue_model_sync(unique_name)
    # The first marker expired while its job was still queued, and a second job took its place.
    sync_queue.connection.delete(pending_marker(unique_name))
    assert enqueue_model_sync(unique_name)
    first, second = sync_queue.get_job_ids()

    simple_worker(sync_queue, max_jobs=1)

    assert sync_queue.fetch_job(first).get_status() == "finished"
    assert sync_queue.connection.get(pending_marker(unique_name)).decode() == second
    assert enqueue_model_sync(unique_name) is False

    simple_worker(sync_queue)

    assert sync_queue.fetch_job(second).get_status() == "finished"
    assert enqueue_model_sync(unique_name) is True


def test_periodic_syncs_run_on_a_worker_and_mirror_the_registry(
    sync_queue, simple_worker, mlflow_server, mlflow_client, unique_name
):
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    incremental = sync_queue.enqueue(sync_incremental)
    full = sync_queue.enqueue(sync_full)

    simple_worker(sync_queue)

    for job in (incremental, full):
        job.refresh()
        assert job.is_finished, job.latest_result().exc_string
        assert job.return_value().startswith("synced ")
    assert RegisteredModel.objects.get(name=unique_name).versions.count() == 2


def test_the_cron_config_schedules_the_syncs_and_the_reconciler(
    sync_queue, simple_worker, mlflow_server
):
    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("quorum.cron")

    jobs = {job.func_name: job for job in scheduler.get_jobs()}
    incremental = jobs["registry.jobs.sync_incremental"]
    full = jobs["registry.jobs.sync_full"]
    assert incremental.queue_name == full.queue_name == "sync"
    assert incremental.interval == settings.QUORUM_SYNC_INTERVAL
    assert full.cron == settings.QUORUM_FULL_SYNC_CRON

    reconcile = jobs["reviews.execution.reconciler.reconcile"]
    assert reconcile.interval == settings.QUORUM_RECONCILE_INTERVAL

    # Interval jobs are due at once when the scheduler starts; the nightly full sync waits for
    # its time. (A per-minute cron job may or may not be due, by the clock: not asserted.)
    enqueued = {job.func_name for job in scheduler.enqueue_jobs()}
    assert {"registry.jobs.sync_incremental", "reviews.execution.reconciler.reconcile"} <= enqueued
    assert "registry.jobs.sync_full" not in enqueued
    simple_worker(sync_queue)
    finished = [sync_queue.fetch_job(j) for j in sync_queue.finished_job_registry.get_job_ids()]
    # The sync, then the evidence fetch it queued for the versions it mirrored.
    (job,) = [j for j in finished if j.func_name == "registry.jobs.sync_incremental"]
    assert job.return_value().startswith("synced ")


def test_new_versions_get_one_coalesced_evidence_fetch(
    sync_queue, simple_worker, mlflow_client, unique_name
):
    from registry import evidence
    from registry.jobs import enqueue_evidence_fetch
    from registry.sync import sync_registry
    from tests.mlflow_registry import register_sklearn_version

    register_sklearn_version(mlflow_client, unique_name, columns={"age": "int64"})
    sync_registry(model=unique_name, client=mlflow_client)
    waiting = evidence.waiting_count()
    assert waiting >= 1

    # A burst of new versions while the fetch waits collapses into that one job.
    assert enqueue_evidence_fetch() is True
    assert enqueue_evidence_fetch() is False
    assert len(sync_queue) == 1
    simple_worker(sync_queue)

    assert evidence.waiting_count() == 0
    read = ModelVersion.objects.get(model__name=unique_name, version=1).evidence
    assert read.signature["inputs"][0]["name"] == "age"
    # Nothing left to read: a second fetch reads nothing from MLflow.
    assert enqueue_evidence_fetch() is True
    simple_worker(sync_queue)
    assert evidence.waiting_count() == 0
