"""The reconciler (reviews.execution.reconciler): lost transition jobs re-queued a bounded number
of times, retries no scheduler took enqueued, and what the transition jobs do not import. The
paths earlier releases queued jobs under are tests/execution/test_job_paths.py."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from reviews.decisions import deciding
from reviews.execution import jobs, reconciler
from reviews.models import AuditEvent, Execution, Notification
from tests.factories import transition_actions

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def test_reconciler_requeues_an_approved_request_whose_job_was_lost(
    approved,
    promoted,
    mlflow_client,
    transitions,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    request = approved(2, "Production")
    transitions.empty()  # as if Redis lost it, or was down when the decision committed
    assert transitions.count == 0

    with django_capture_on_commit_callbacks(execute=True):
        call_command("reconcile")
    simple_worker(transitions)

    request.refresh_from_db()
    assert request.execution == Execution.DONE
    assert mlflow_client.get_version(promoted, 2).stage == "Production"
    assert AuditEvent.objects.filter(action="transition.requeued", request=request).exists()


def test_reconciler_leaves_a_queued_job_alone(approved, transitions):
    approved(2, "Production")

    assert reconciler.requeue_lost_transitions() == []
    assert transitions.count == 1


def test_the_reconciler_requeues_a_lost_job_a_limited_number_of_times_then_fails_it(
    approved, transitions, simple_worker, settings, cast, admin_user, promoted, mlflow_client
):
    settings.QUORUM_TRANSITION_MAX_REQUEUES = 2
    request = approved(2, "Production")
    cast["requester"].email = "requester@example.com"
    cast["requester"].save(update_fields=["email"])

    for _ in range(2):
        transitions.empty()  # the job is lost again
        assert reconciler.requeue_lost_transitions() == [request.pk]
    transitions.empty()
    assert reconciler.requeue_lost_transitions() == []

    request.refresh_from_db()
    assert (request.execution, request.execution_requeues) == (Execution.FAILED, 2)
    assert request.execution_error.startswith("The transition job was lost 3 times (last: ")
    assert transition_actions(request) == [
        "transition.requeued",
        "transition.requeued",
        "transition.failed",
    ]
    failed = AuditEvent.objects.get(request=request, action="transition.failed")
    assert Notification.objects.filter(event=failed, recipient__username="requester").exists()

    # An admin's retry starts the allowance again, and the transition runs.
    deciding.transition_retry(request_id=request.pk, user=admin_user)
    request.refresh_from_db()
    assert request.execution_requeues == 0
    jobs.enqueue_transition(request.pk, replace=True)
    simple_worker(transitions)
    assert mlflow_client.get_version(promoted, 2).stage == "Production"


def test_a_retry_no_scheduler_took_is_enqueued_by_the_reconciler(
    approved,
    promoted,
    quorum_queues,
    transitions,
    syncs,
    simple_worker,
    settings,
    unreachable_mlflow,
):
    settings.QUORUM_TRANSITION_RETRY_INTERVALS = [30]
    request = approved(2, "Production")
    unreachable_mlflow.down()
    simple_worker(transitions)  # no scheduler here: the retry waits in the scheduled registry
    registry = transitions.scheduled_job_registry
    job_id = jobs.transition_job_id(request)
    assert registry.get_job_ids() == [job_id]
    assert reconciler.enqueue_overdue_retries() == []  # not due yet

    # As if the 30 s went by and then some, with no scheduler alive to move it.
    overdue = int((timezone.now() - reconciler.OVERDUE_GRACE).timestamp()) - 5
    registry.connection.zadd(registry.key, {job_id: overdue})
    unreachable_mlflow.up()
    assert reconciler.reconcile()["overdue_retries"] == 1

    assert transitions.job_ids == [job_id] and registry.get_job_ids() == []
    simple_worker(transitions)
    request.refresh_from_db()
    assert (request.execution, request.execution_attempts) == (Execution.DONE, 2)
    assert transition_actions(request) == [
        "transition.started",
        "transition.attempt_failed",
        "transition.retry_enqueued",
        "transition.started",
        "transition.done",
    ]


# -- what the transition jobs import ----------------------------------------------------------


def test_the_transition_jobs_import_neither_the_reconciler_nor_the_domain_actions():
    """The reconciler depends on the jobs, the domain actions on the jobs; never the reverse."""
    probe = (
        "import sys, django; django.setup(); import reviews.execution.jobs; "
        "print(reviews.execution.jobs.__name__, 'reviews.execution.reconciler' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "quorum.settings"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.stdout.split() == ["reviews.execution.jobs", "False"], result.stderr
    # Not even inside a function: that import is what made the domain actions and jobs a cycle.
    tree = ast.parse(Path(jobs.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(f"{node.module or ''}.{alias.name}".lstrip(".") for alias in node.names)
    domain_actions = {"decisions.opening", "decisions.voting", "decisions.deciding"}
    assert not imported & {"reconciler", *domain_actions}, imported
