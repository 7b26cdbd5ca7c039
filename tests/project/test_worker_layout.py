"""The Procfile's workers: `worker` (transitions, the reconciler, mail) and `sync` (syncs and the
evidence and digests they queue). A decision is carried out while the sync worker is busy with a
job that does not end: here a sync whose MLflow never answers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from django.db import connection
from rq.job import Job, JobStatus

from quorum.localservices import free_port
from registry import jobs as registry_jobs
from registry.content import digest_missing
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.models import Execution, TransitionRequest
from tests.mlflow_registry import register_in_mlflow
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a worker process shares it"),
]

ROOT = Path(__file__).resolve().parents[2]


def procfile_worker_queues() -> dict[str, tuple[str, ...]]:
    """Each `rqworker` process type of the Procfile, with the queues it names."""
    found = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        words = command.split()
        if "rqworker" in words:
            after = words[words.index("rqworker") + 1 :]
            found[name.strip()] = tuple(word for word in after if not word.startswith("-"))
    return found


@pytest.fixture
def silent_mlflow():
    """An address that accepts connections and never answers, like an MLflow stuck on a slow
    store: a job that calls it waits until its timeout."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_every_queue_has_a_worker_in_the_procfile_and_syncs_have_their_own():
    from django.conf import settings

    layout = procfile_worker_queues()
    served = {queue for queues in layout.values() for queue in queues}
    assert served == set(settings.QUORUM_QUEUES)
    assert layout["sync"] == ("sync",)
    assert registry_jobs.SYNC_QUEUE not in layout["worker"]


def test_a_decision_is_carried_out_while_the_sync_worker_is_stuck_in_a_job(
    workers, mlflow_server, mlflow_client, unique_name, policies, rq_queue, silent_mlflow
):
    layout = procfile_worker_queues()
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(model=unique_name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    sync_queue = rq_queue(registry_jobs.SYNC_QUEUE)
    # The sync worker reads MLflow at an address that never answers, for up to ten minutes.
    workers.start(
        mlflow_url=silent_mlflow,
        queues=layout["sync"],
        env={"MLFLOW_HTTP_REQUEST_TIMEOUT": "600"},
    )
    stuck = sync_queue.enqueue(registry_jobs.sync_incremental)
    wait_for(
        lambda: (
            Job.fetch(stuck.id, connection=sync_queue.connection).get_status() == JobStatus.STARTED
        ),
        timeout=60,
        message="the sync worker to start the sync",
    )
    workers.start(mlflow_url=mlflow_server.url, queues=layout["worker"])

    request = opening.request_create(
        model=unique_name, version=2, target="Production", requester=policies["requester"]
    )
    for voter in ("lead", "scientist1", "scientist2"):
        voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")

    wait_for(
        lambda: TransitionRequest.objects.get(pk=request.pk).execution == Execution.DONE,
        timeout=120,
        message="the transition to be done",
    )
    assert mlflow_client.get_version(unique_name, 2).stage == "Production"
    assert Job.fetch(stuck.id, connection=sync_queue.connection).get_status() == JobStatus.STARTED
