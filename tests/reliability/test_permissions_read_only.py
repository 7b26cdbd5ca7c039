"""Posts outside the permission matrix (test_permissions.py) change nothing: every read-only page
and endpoint refuses a POST (405), the jobs dashboard's actions send anyone but staff to the admin
login, and logging out needs a post."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from tests.reliability.checks import state
from tests.reliability.routes import ANY_METHOD, READ_ONLY

# In the everyday loop (not e2e): the test client only, no processes. Pages never call MLflow.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]


@pytest.mark.parametrize("route", sorted(READ_ONLY | ANY_METHOD))
def test_read_only_urls_refuse_posts_and_change_nothing(route, people, pending):
    client = Client()
    user, token = people["approver"]
    client.force_login(user)
    arguments = (READ_ONLY | ANY_METHOD)[route].items()
    kwargs = {key: pending.pk if value == "pending" else value for key, value in arguments}
    before = state()

    response = client.post(
        reverse(route, kwargs=kwargs), {}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == (200 if route in ANY_METHOD else 405)
    assert state() == before


RQ_ACTIONS = ["clear", "requeue_all", "delete_failed_jobs", "actions", "confirm_action"]
RQ_JOB_ACTIONS = ["delete_job", "requeue_job", "enqueue_job", "stop_job"]


@pytest.mark.parametrize("role", ["anonymous", "outsider", "requester", "approver"])
def test_the_jobs_dashboard_actions_are_for_staff_only(role, people, pending, rq_queue):
    """Emptying or requeueing the transitions queue is an admin's act; others go to the admin
    login and the queue keeps its job."""
    from reviews.execution import jobs

    queue = rq_queue(jobs.QUEUE)
    jobs.enqueue_transition(pending.pk)
    client = Client()
    if role != "anonymous":
        client.force_login(people[role][0])
    index = list(django_settings.RQ_QUEUES).index(jobs.QUEUE)
    job_id = jobs.transition_job_id(pending)
    urls = [reverse(f"django_rq:{name}", args=[index]) for name in RQ_ACTIONS]
    urls += [reverse(f"django_rq:{name}", args=[index, job_id]) for name in RQ_JOB_ACTIONS]

    for url in urls:
        response = client.post(url, {"action": "delete", "job_ids": [job_id]})
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url
    assert queue.job_ids == [job_id]


def test_logging_out_needs_a_post(people):
    client = Client()
    client.force_login(people["requester"][0])
    assert client.get(reverse("logout")).status_code == 405
    assert client.get(reverse("reviews:inbox")).status_code == 200  # still signed in
