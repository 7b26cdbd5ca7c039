"""`manage.py rqworker` with no queue named serves every Quorum queue: started the bare way an
operator might, as a real process, it carries out a transition and then its model's sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from quorum.localservices import stop_process
from registry.content import digest_missing
from registry.jobs import SYNC_QUEUE
from registry.models import ChangeKind, RegistryChange
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.execution import jobs, stalls
from reviews.models import Execution, TransitionRequest
from tests.mlflow_registry import register_in_mlflow
from tests.processes import database_url
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a worker process shares it"),
]

ROOT = Path(__file__).resolve().parents[2]


def test_a_bare_rqworker_serves_every_queue_and_runs_a_transition_and_its_sync(
    mlflow_server, mlflow_client, unique_name, policies, rq_queue, tmp_path
):
    queues = {name: rq_queue(name) for name in settings.QUORUM_QUEUES}
    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(model=unique_name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    request = opening.request_create(
        model=unique_name, version=2, target="Production", requester=policies["requester"]
    )
    for voter in ("lead", "scientist1", "scientist2"):
        voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")
    assert queues[jobs.QUEUE].job_ids == [jobs.transition_job_id(request)]

    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "MLFLOW_TRACKING_URI": mlflow_server.url,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: all(stalls.consumers(name) for name in settings.QUORUM_QUEUES),
            timeout=60,
            message="a worker listening on every queue",
        )
        wait_for(
            lambda: RegistryChange.objects.filter(
                version__model__name=unique_name, kind=ChangeKind.STAGE_CHANGED
            ).exists(),
            timeout=60,
            message="the transition mirrored (by the transition job itself)",
        )
        wait_for(
            lambda: any(
                job is not None and job.func_name == "registry.jobs.sync_model"
                for job in (
                    queues[SYNC_QUEUE].fetch_job(i)
                    for i in queues[SYNC_QUEUE].finished_job_registry.get_job_ids()
                )
            ),
            timeout=60,
            message="the follow-up sync to finish",
        )
    finally:
        stop_process(worker)
        log.close()
        print((tmp_path / "worker.log").read_text()[-3000:])

    request = TransitionRequest.objects.get(pk=request.pk)
    assert request.execution == Execution.DONE
    assert mlflow_client.get_version(unique_name, 2).stage == "Production"
    change = RegistryChange.objects.get(version=request.version, kind=ChangeKind.STAGE_CHANGED)
    assert (change.new, change.origin) == ("Production", "quorum")
    sync_queue = queues[SYNC_QUEUE]
    finished = [sync_queue.fetch_job(i) for i in sync_queue.finished_job_registry.get_job_ids()]
    # The follow-up sync, once; the evidence fetch and content digest it may queue for new
    # versions run there too.
    later = {"registry.jobs.fetch_evidence", "registry.jobs.digest_content"}
    syncs = [job for job in finished if job and job.func_name not in later]
    assert len(syncs) == 1, [job.func_name for job in syncs]
