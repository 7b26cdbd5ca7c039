"""Rollback and break glass in a real browser, against a real MLflow and a real worker: the model
page's timeline and chart, its "Roll back" button, and the break-glass form that refuses to go
without a reason. Screenshots land in var/screenshots/ for a human to look at."""

from __future__ import annotations

import os
import re
import time

import pytest

from registry.sync import sync_registry
from reviews import services
from reviews.models import Execution, RequestKind, TransitionRequest
from reviews.policies import policies_load
from tests.conftest import STANDARD_POLICIES
from tests.test_browser_review import fraud, sign_in, worker  # noqa: F401 - fixtures

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POLICIES = STANDARD_POLICIES.replace(
    "  data-science: [scientist1, scientist2, scientist3]\n",
    "  data-science: [scientist1, scientist2, scientist3]\n  oncall: [outsider]\n",
).replace(
    "    archive_existing: true\n",
    "    archive_existing: true\n"
    "    rollback: {require: [{group: ml-leads, approvals: 1}]}\n"
    "    break_glass: {groups: [oncall], ratify_within: 24h, on_unratified: revert}\n",
)


def wait_until(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError("timed out waiting")


def test_rollback_button_puts_the_previous_holder_back(sign_in, fraud, mlflow_client, worker, lead):  # noqa: F811
    policies_load(text=POLICIES)
    # Someone moved v5 to Production in MLflow directly, archiving v3.
    mlflow_client.transition_stage(fraud, 5, "Production", archive_existing=True)
    sync_registry(model=fraud, client=mlflow_client)

    requester = sign_in("requester")
    page = requester.goto(f"/models/{fraud}/")
    button = page.locator("button[data-rollback='Production']")
    assert re.match(
        r"Roll back Production to v3 \(held it until \d{4}-\d\d-\d\d, replaced by v5\)",
        button.inner_text(),
    )
    timeline = page.locator("#holder-timeline").inner_text()
    assert "made in MLflow directly" in timeline and "already there when Quorum started" in timeline
    page.wait_for_selector("#chart-holders.js-plotly-plot .main-svg")
    requester.shot("model-timeline-rollback.png")

    button.click()
    page.wait_for_url(re.compile(r".*/reviews/\d+/$"))
    rollback = TransitionRequest.objects.get(kind=RequestKind.ROLLBACK)
    kind = page.locator("#request-kind").inner_text()
    assert "Puts v3 back at Production, replacing v5" in kind
    assert "Decided by the policy's rollback rules" in kind
    requester.shot("rollback-request.png")

    services.vote_cast(request_id=rollback.pk, user=lead, decision="approve")
    wait_until(lambda: mlflow_client.get_version(fraud, 3).stage == "Production")
    wait_until(lambda: TransitionRequest.objects.get(pk=rollback.pk).execution == Execution.DONE)
    assert mlflow_client.get_version(fraud, 5).stage == "Archived"
    wait_until(lambda: not TransitionRequest.objects.get(pk=rollback.pk).awaiting_mirror)
    page = requester.goto(f"/models/{fraud}/")
    current = page.locator("#holder-timeline li.is-current[data-target='Production']")
    assert "v3" in current.inner_text() and "rollback" in current.inner_text()
    requester.shot("model-timeline-after-rollback.png")
    requester.assert_clean()


def test_break_glass_form_needs_a_reason_and_moves_at_once(sign_in, fraud, mlflow_client, worker):  # noqa: F811
    policies_load(text=POLICIES)
    oncall = sign_in("outsider")
    page = oncall.goto(f"/models/{fraud}/")
    page.click("#break-glass summary")
    page.select_option("#break-glass-version", "5")
    page.select_option("#break-glass-target", "Production")
    page.click("#break-glass-submit")  # no reason: the browser refuses to send the form
    assert page.url.endswith(f"/models/{fraud}/")
    assert page.evaluate("document.querySelector('#break-glass-reason').validity.valueMissing")
    assert not TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS).exists()
    oncall.shot("break-glass-form-no-reason.png")

    page.fill("#break-glass-reason", "v3 approves every payment since 02:10; INC-4411")
    oncall.shot("break-glass-form.png")
    page.click("#break-glass-submit")
    page.wait_for_url(re.compile(r".*/reviews/\d+/$"))
    assert "break glass" in page.locator("#request-kind").inner_text()
    wait_until(lambda: mlflow_client.get_version(fraud, 5).stage == "Production")
    wait_until(lambda: TransitionRequest.objects.filter(kind=RequestKind.RATIFICATION).exists())
    page.reload()
    assert "Ratification: #" in page.locator("#request-kind").inner_text()
    oncall.shot("break-glass-request.png")
    oncall.assert_clean()
