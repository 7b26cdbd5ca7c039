"""Structured logs (operations/logs.py): with the JSON formatter every line is one JSON object
with the level, time, logger, request id, user and what it is about; the request id comes back
in X-Request-ID and travels into the jobs the request queues, through a real worker."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.urls import include, path
from rq.job import Job
from structlog.contextvars import bound_contextvars

from infra.queues import enqueue_once, get_queue
from operations.logs import JsonFormatter
from tests.waiting import wait_for

logger = logging.getLogger("reviews.operations_test")
JOB_ID = "operations-logs-test-job"


def logged_job() -> None:
    logger.warning("the job ran")


@login_required
def about_a_version(request):
    with bound_contextvars(transition_request=7, model="fraud", version=2):
        logger.warning("looking at a version")
    return HttpResponse("ok")


def queue_a_job(request):
    enqueue_once("default", logged_job, job_id=JOB_ID, what="the test's job", replace=True)
    return HttpResponse("queued")


def explode(request):
    raise RuntimeError("the view failed on purpose")


urlpatterns = [
    path("about/", about_a_version),
    path("queue/", queue_a_job),
    path("explode/", explode),
    path("", include("quorum.urls")),
]


@pytest.fixture
def json_lines():
    """The JSON formatter on the `reviews` and `django.request` loggers, writing to a buffer
    for the test; `lines()` parses what was written, line by line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger("reviews"), logging.getLogger("django.request")]
    for each in loggers:
        each.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for each in loggers:
        each.removeHandler(handler)


@pytest.mark.urls(__name__)
def test_a_line_is_one_json_object_with_its_context(client, lead, json_lines):
    client.force_login(lead)
    response = client.get("/about/", HTTP_X_REQUEST_ID="trace-0001")
    assert response["X-Request-ID"] == "trace-0001"
    [line] = json_lines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line.pop("time"))
    assert line == {
        "message": "looking at a version",
        "level": "warning",
        "logger": "reviews.operations_test",
        "request_id": "trace-0001",
        "path": "/about/",
        "user": "lead",
        "transition_request": 7,
        "model": "fraud",
        "version": 2,
    }


@pytest.mark.urls(__name__)
def test_a_request_without_a_usable_id_gets_a_new_one(client, json_lines, outsider):
    client.force_login(outsider)
    response = client.get("/about/", HTTP_X_REQUEST_ID="not a token\nforged: line")
    generated = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    [line] = json_lines()
    assert line["request_id"] == generated
    assert line["user"] == "outsider"
    assert client.get("/about/")["X-Request-ID"] != generated


@pytest.mark.urls(__name__)
def test_a_traceback_stays_inside_its_json_line(client, json_lines, settings, db):
    settings.DEBUG = False
    client.raise_request_exception = False
    assert client.get("/explode/", HTTP_X_REQUEST_ID="trace-0002").status_code == 500
    [line] = json_lines()
    assert line["level"] == "error"
    assert line["logger"] == "django.request"
    assert line["request_id"] == "trace-0002"
    assert "user" not in line  # nobody signed in
    assert line["message"] == "Internal Server Error: /explode/"
    assert "RuntimeError: the view failed on purpose" in line["exception"]


@pytest.mark.e2e
@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_the_request_id_travels_into_the_job_and_its_worker_lines(
    client, mlflow_server, rq_queue, workers
):
    queue = rq_queue("default")
    response = client.get("/queue/", HTTP_X_REQUEST_ID="trace-into-the-job")
    assert response.content == b"queued"
    assert Job.fetch(JOB_ID, connection=queue.connection).meta == {
        "request_id": "trace-into-the-job"
    }

    worker = workers.start(mlflow_url=mlflow_server.url, env={"QUORUM_LOG_FORMAT": "json"})
    job = Job.fetch(JOB_ID, connection=get_queue("default").connection)
    wait_for(
        lambda: job.get_status(refresh=True) == "finished",
        timeout=60,
        interval=0.2,
        message="the worker to run the job",
    )
    _, log_path = workers.processes[-1]
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    [ran] = [line for line in lines if line["message"] == "the job ran"]
    assert ran["request_id"] == "trace-into-the-job"
    assert ran["job_id"] == JOB_ID
    assert ran["queue"] == "default"
    assert ran["level"] == "warning"
    # RQ's own line about the job carries it too.
    assert any(
        "Job OK" in line["message"] and line.get("request_id") == "trace-into-the-job"
        for line in lines
    ), text
    assert worker.poll() is None
