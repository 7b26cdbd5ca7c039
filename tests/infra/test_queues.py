"""Job ids, job states and queueing once (quorum/queues.py), used by every job of Quorum's."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.utils import timezone

from infra import queues
from registry.jobs import SYNC_QUEUE
from reviews.models import ApprovalPolicy, GuardProbe

pytestmark = pytest.mark.django_db


def test_a_job_id_names_the_kind_the_row_and_its_creation_time():
    row = SimpleNamespace(pk=7, created_at=datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC))
    assert queues.job_id_for("revert", row) == "revert-7-1796518923456789"


def test_failed_states_are_ended_ones_and_no_live_state_is_ended():
    assert queues.FAILED_JOB_STATES < queues.ENDED_JOB_STATES
    assert not queues.LIVE_JOB_STATES & queues.ENDED_JOB_STATES


def test_a_policy_saved_after_a_guard_refresh_finished_queues_another(
    rq_queue, simple_worker, django_capture_on_commit_callbacks, mlflow_server
):
    syncs = rq_queue(SYNC_QUEUE)
    GuardProbe.objects.create(
        pk=1,
        checked_at=timezone.now(),
        tracking_uri=mlflow_server.url,
        guarded=True,
        service_identity=True,
    )
    with django_capture_on_commit_callbacks(execute=True):
        policy = ApprovalPolicy.objects.create(name="first", targets=["Production"])
    assert syncs.job_ids == ["guard-refresh"]
    simple_worker(syncs)
    assert syncs.job_ids == []
    # The refresh's sync probed the test's unguarded MLflow: say it is guarded again.
    GuardProbe.objects.filter(pk=1).update(guarded=True, service_identity=True)

    with django_capture_on_commit_callbacks(execute=True):
        policy.save()

    # The finished refresh's record used to refuse it, for as long as RQ kept the record.
    assert syncs.job_ids == ["guard-refresh"]
