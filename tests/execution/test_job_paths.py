"""Jobs queued under the paths the review engine's entry points had before they moved into its
sub-packages: they still resolve, to the entry points as they are now, and a worker runs them.

RQ stores a job's function as a dotted path, so a job queued by the previous release (a retry
waiting out its backoff, a job queued while the workers were replaced, a reconcile from a
scheduler of that release) names the old path. The shims that keep these paths (reviews/jobs.py,
reviews/reconciler.py, reviews/attestation.py, reviews/reverts.py, reviews/webhooks_out.py) go in
the next release, and this module with them.
"""

from __future__ import annotations

import datetime

import pytest
from rq.job import Job
from rq.utils import import_attribute

from reviews.execution import attestation, jobs, reconciler, reverts
from reviews.notify import webhooks_out
from tests.factories import transition_actions

pytestmark = pytest.mark.django_db

OLD_PATHS = {
    "reviews.jobs.execute_transition": jobs.execute_transition,
    # The reconciler's path before reviews/reconciler.py, and its path before reviews/execution/.
    "reviews.jobs.reconcile": reconciler.reconcile,
    "reviews.reconciler.reconcile": reconciler.reconcile,
    "reviews.attestation.write_job": attestation.write_job,
    "reviews.reverts.revert_out_of_band": reverts.revert_out_of_band,
    "reviews.webhooks_out.deliver_event": webhooks_out.deliver_event,
}


@pytest.mark.parametrize("path", sorted(OLD_PATHS))
def test_an_old_job_path_resolves_to_the_entry_point_as_it_is_now(path, rq_queue):
    assert import_attribute(path) is OLD_PATHS[path]
    # As a worker resolves it: from the job record's stored path.
    job = Job.create(path, args=(1,), connection=rq_queue("default").connection)
    assert job.func_name == path
    assert job.func is OLD_PATHS[path]


@pytest.mark.parametrize("path", ["reviews.jobs.reconcile", "reviews.reconciler.reconcile"])
def test_a_reconcile_job_queued_under_an_old_path_runs_on_a_worker(path, rq_queue, simple_worker):
    queue = rq_queue("default")
    job = queue.enqueue(path)

    simple_worker(queue)

    assert job.get_status(refresh=True) == "finished", job.latest_result().exc_string
    assert set(job.return_value()) == {
        "expired",
        "overdue_retries",
        "requeued",
        "proofs_requeued",
        "classified",
        "reverts_requeued",
        "revocations_requeued",
    }


def test_a_transition_retry_queued_under_the_old_path_is_taken_for_one_and_carried_out(
    approved, promoted, mlflow_client, quorum_queues, transitions, simple_worker
):
    """The previous release's retry, overdue in the scheduled registry: the reconciler moves it
    and records it as a transition's retry, and a worker carries the request out."""
    request = approved(2, "Production")
    transitions.empty()  # the new release's job: only the old one is left
    overdue = datetime.datetime.now(datetime.UTC) - reconciler.OVERDUE_GRACE * 2
    transitions.enqueue_at(
        overdue,
        "reviews.jobs.execute_transition",
        request.pk,
        job_id=jobs.transition_job_id(request),
    )

    assert reconciler.enqueue_overdue_retries() == [jobs.transition_job_id(request)]
    simple_worker(transitions)

    assert mlflow_client.get_version(promoted, 2).stage == "Production"
    assert transition_actions(request) == [
        "transition.retry_enqueued",
        "transition.started",
        "transition.done",
    ]
