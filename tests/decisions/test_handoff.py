"""The hand-off from a decision to its execution (`reviews.decisions.handoff`): decisions queue
the transition job by its dotted path, without importing execution; the path must name the job
as it is now, and the job queued on approval must be that one."""

from __future__ import annotations

import pytest
from rq.utils import import_attribute

from reviews.decisions import handoff
from reviews.execution import jobs

pytestmark = pytest.mark.django_db


def test_the_named_transition_job_is_the_entry_point_as_it_is_now():
    assert import_attribute(handoff.TRANSITION_JOB) is jobs.execute_transition


def test_an_approval_queues_the_transition_job_under_its_path(approved, transitions):
    request = approved(3, "Production")

    job = transitions.fetch_job(handoff.transition_job_id(request))

    assert job is not None
    assert job.func_name == handoff.TRANSITION_JOB
    assert job.args == (request.pk,)
    assert job.retries_left == handoff.retry_policy().max
