"""A transition nobody runs says so: on its page, in its status poll, in the admin and in
`manage.py check`, naming the command that starts a worker. Real Redis, no worker running."""

from __future__ import annotations

import io
import os
import socket
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rq.worker import Worker

from reviews.decisions import opening, voting
from reviews.execution import jobs, stalls
from reviews.models import Execution

pytestmark = pytest.mark.django_db

COMMAND = "python manage.py rqworker --with-scheduler"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def no_worker(rq_queue):
    """The transitions queue, emptied, with no live worker listening on it."""
    queue = rq_queue(jobs.QUEUE)
    # Workers that earlier tests killed stay registered until their key expires (7 minutes).
    for worker in Worker.all(queue=queue):
        if worker.hostname == socket.gethostname() and not alive(worker.pid):
            worker.register_death()
    assert stalls.consumers() == 0, "a live worker is consuming the transitions queue"
    return queue


@pytest.fixture
def queued(no_worker, policies, mlflow_client, unique_name, django_capture_on_commit_callbacks):
    """An approved request whose transition job waits on the transitions queue."""
    from registry.content import digest_missing
    from registry.sync import sync_registry
    from tests.mlflow_registry import register_in_mlflow

    register_in_mlflow(mlflow_client, unique_name, versions=2)
    sync_registry(model=unique_name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    request = opening.request_create(
        model=unique_name, version=2, target="Production", requester=policies["requester"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        for voter in ("lead", "scientist1", "scientist2"):
            voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")
    request.refresh_from_db()
    assert request.execution == Execution.QUEUED
    assert no_worker.job_ids == [jobs.transition_job_id(request)]
    return request


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def check_output() -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_a_job_waiting_past_the_threshold_with_no_worker_says_so_everywhere(
    queued, policies, settings
):
    settings.QUORUM_TRANSITION_WAIT_WARNING = 0
    requester = signed_in(policies["requester"])

    page = requester.get(reverse("reviews:request_detail", args=[queued.pk]))
    text = page.content.decode()
    assert 'id="execution-stalled"' in text
    assert "No worker is consuming the “transitions” queue" in text
    assert COMMAND in text

    status = requester.get(reverse("reviews:request_status", args=[queued.pk])).json()
    assert status["stalled"].startswith("No worker is consuming the “transitions” queue")
    assert COMMAND in status["stalled"] and status["poll"] is True

    admin = signed_in(policies["admin"])
    listing = admin.get(reverse("admin:reviews_transitionrequest_changelist"))
    messages = [str(m) for m in listing.context["messages"]]
    assert any(
        f"No worker is consuming the “transitions” queue: approved requests #{queued.pk} wait" in m
        and COMMAND in m
        for m in messages
    ), messages
    detail = admin.get(reverse("admin:reviews_transitionrequest_change", args=[queued.pk]))
    assert any(COMMAND in str(m) for m in detail.context["messages"])

    output = check_output()
    assert "reviews.W001" in output
    assert f"approved requests #{queued.pk} wait for their transition" in output
    assert COMMAND in output


def test_a_job_within_the_threshold_is_not_reported(queued, policies, settings):
    settings.QUORUM_TRANSITION_WAIT_WARNING = 3600

    page = signed_in(policies["requester"]).get(reverse("reviews:request_detail", args=[queued.pk]))

    assert "No worker is consuming" not in page.content.decode()
    assert page.context["status"]["stalled"] == ""
    assert stalls.stalled_requests() == []
    assert "reviews.W001" not in check_output()


def test_a_retry_waiting_out_its_backoff_is_not_a_stall(queued, no_worker, settings):
    settings.QUORUM_TRANSITION_WAIT_WARNING = 0
    job = no_worker.fetch_job(jobs.transition_job_id(queued))
    no_worker.remove(job)
    no_worker.schedule_job(job, datetime.now(UTC) + timedelta(seconds=60))

    assert stalls.request_stall(queued) is None
    assert stalls.stalled_requests() == []
