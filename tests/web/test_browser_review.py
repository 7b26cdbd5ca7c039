"""Reviews in a real browser: request, approve, watch the transition land; reject; refuse; escape.

Real everything: the test MLflow server holds the model, the sync mirrors it, a real RQ worker
(a worker process on the transitions and sync queues, tests/processes.py) carries out the
approved transition against MLflow, and Debian's Chromium drives the live server. Screenshots
land in var/screenshots/ for a human to look at.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from registry.content import digest_missing
from registry.jobs import SYNC_QUEUE
from registry.models import Stage
from registry.sync import sync_registry
from reviews.decisions import voting
from reviews.execution import jobs
from reviews.models import Decision, Execution, RequestKind, TransitionRequest, Vote
from reviews.policies.loading import policies_load
from tests.factories import (
    HOSTILE,
    cache_all_history,
    make_hostile_request,
    make_model,
    make_request,
    make_version,
)
from tests.mlflow_registry import register_fraud_model, register_in_mlflow
from tests.policy_files import policies_with
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(workers, mlflow_server):
    """A real worker process on the transitions and sync queues, as the Procfile starts one; a
    failed transition is retried twice at once."""
    return workers.start(
        mlflow_url=mlflow_server.url,
        queues=(jobs.QUEUE, SYNC_QUEUE),
        env={"QUORUM_TRANSITION_RETRY_INTERVALS": "0,0"},
    )


@pytest.fixture
def fraud(mlflow_client, unique_name, policies):
    """Five versions in MLflow and the mirror: v3 in Production, v5 the new candidate."""
    name = f"fraud-{unique_name[-6:]}"
    register_fraud_model(mlflow_client, name)
    sync_registry(model=name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    return name


def test_request_three_approvals_and_the_transition_lands_without_reload(
    sign_in, live_server, fraud, mlflow_client, worker, policies
):
    requester = sign_in("requester")
    page = requester.goto(f"/models/{fraud}/versions/5/")
    assert page.locator("#promotion-target").input_value() == "Production"
    preview = page.locator(".preview[data-target='Production']")
    assert preview.is_visible()
    assert "needs 1 of ml-leads and 2 of data-science" in preview.inner_text()
    assert "Compared with v3" in preview.inner_text()
    assert not page.locator(".preview[data-target='Staging']").is_visible()
    page.fill("#promotion-comment", "Weekly retrain on March payments.")
    requester.shot("version-request-form.png")
    page.click("#promotion-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/reviews/\d+/$"))
    request = TransitionRequest.objects.get(version__model__name=fraud)
    assert "is open; the approvers are told" in page.inner_text(".messages")
    assert page.locator("#status-badge").inner_text() == "pending"

    for number, username in enumerate(["lead", "scientist1", "scientist2"]):
        approver = sign_in(username)
        inbox = approver.goto("/reviews/")
        awaiting = inbox.locator("#awaiting")
        assert awaiting.locator(".request-link").count() == 1
        assert f"data-science {max(number - 1, 0)}/2" in awaiting.inner_text()
        if number == 0:
            approver.shot("inbox.png")
        awaiting.locator(".request-link").click()
        approver.page.wait_for_url(f"**/reviews/{request.pk}/")
        approver.page.wait_for_selector("#chart-comparison.js-plotly-plot .main-svg")
        if number == 1:
            approver.shot("request-pending.png")
            phone = sign_in("scientist3", width=390, height=844)
            phone.goto(f"/reviews/{request.pk}/")
            phone.page.wait_for_selector("#chart-comparison.js-plotly-plot .main-svg")
            width = phone.page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, "the request page scrolls sideways on a phone"
            phone.shot("request-phone.png")
            phone.assert_clean()
        approver.page.fill("#vote-comment", f"Checked by {username}.")
        approver.page.click("button[value=approve]")
        approver.page.wait_for_url(f"**/reviews/{request.pk}/")
        approver.assert_clean()

    # The last approver's page: queued, then done, with no reload in between.
    last = approver.page
    last.evaluate("window.stillTheSamePage = true")
    last.wait_for_function(
        # A function, not an expression: Playwright evaluates an expression with eval, which
        # the Content-Security-Policy forbids.
        "() => document.getElementById('execution-label').textContent === 'done'",
        timeout=60_000,
    )
    assert last.evaluate("window.stillTheSamePage") is True
    outcome = last.locator("#execution-outcome")
    assert outcome.inner_text() == "Version 5 is now in Production (version 3 archived)."
    assert last.locator("#status-badge").inner_text() == "approved · done"
    assert not last.locator("#execution-spinner").is_visible()
    approver.shot("request-done.png")

    assert mlflow_client.get_version(fraud, 5).stage == "Production"
    assert mlflow_client.get_version(fraud, 3).stage == "Archived"
    request.refresh_from_db()
    assert (request.decision, request.execution) == (Decision.APPROVED, Execution.DONE)

    admin = sign_in("admin")
    audit = admin.goto(f"/audit/?model={fraud}")
    assert "Chain intact" in audit.inner_text(".chain")
    assert audit.locator("td code", has_text="transition.done").count() == 1
    admin.shot("audit.png")
    history = admin.goto(f"/models/{fraud}/")
    assert "approved · done" in history.locator("#requests").inner_text()
    for session in (requester, admin):
        session.assert_clean()


def test_rejection_needs_a_comment_and_the_requester_sees_why(
    sign_in, live_server, mlflow_client, unique_name, policies, requester
):
    name = f"churn-{unique_name[-6:]}"
    register_in_mlflow(mlflow_client, name, versions=2)
    mlflow_client.transition_stage(name, 1, "Production")
    sync_registry(model=name, client=mlflow_client)
    digest_missing(client=mlflow_client)  # the digest job that follows a sync
    request = make_request(name, requester=requester)

    reviewer = sign_in("scientist1")
    page = reviewer.goto(f"/reviews/{request.pk}/")
    page.click("button[value=reject]")
    assert "Say why you reject" in page.inner_text(".field-error")
    assert not Vote.objects.exists()
    # The form came back with a 400, which Chromium logs as a failed load: expected here.
    assert reviewer.errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    reviewer.errors.clear()
    page.fill("#vote-comment", "Recall on the new-merchant slice fell 4 points.")
    page.click("button[value=reject]")
    page.wait_for_url(f"**/reviews/{request.pk}/")
    assert page.locator("#status-badge").inner_text() == "rejected"
    assert "Recall on the new-merchant slice fell 4 points." in page.inner_text("#decision")
    assert page.locator("button[value=approve]").count() == 0

    author = sign_in("requester")
    mine = author.goto("/reviews/").locator("#mine")
    assert "Why rejected: Recall on the new-merchant slice fell 4 points." in mine.inner_text()
    model_page = author.goto(f"/models/{name}/")
    assert "Recall on the new-merchant slice" in model_page.locator("#requests").inner_text()
    assert mlflow_client.get_version(name, 2).stage == "None"
    reviewer.assert_clean()
    author.assert_clean()


def test_outsider_sees_no_buttons_and_a_forged_vote_is_refused(
    sign_in, live_server, policies, requester
):
    model = make_model("outsider-check")
    make_version(model, stage=Stage.PRODUCTION, metrics={"accuracy": 0.85, "f1": 0.8})
    cache_all_history(make_version(model, metrics={"accuracy": 0.9, "f1": 0.85}))
    request = make_request(model.name, requester=requester)
    outsider = sign_in("outsider")
    page = outsider.goto(f"/reviews/{request.pk}/")
    assert page.locator(".actions button").count() == 0
    assert "You are not in ml-leads or data-science." in page.inner_text(".actions")

    # A POST with the outsider's own valid CSRF token: the server still refuses it.
    token = next(c["value"] for c in outsider.context.cookies() if c["name"] == "csrftoken")
    response = outsider.context.request.post(
        f"{live_server.url}/reviews/{request.pk}/vote",
        form={"csrfmiddlewaretoken": token, "decision": "approve", "comment": "forged"},
        headers={"Referer": f"{live_server.url}/reviews/{request.pk}/"},
    )
    assert response.status == 403
    assert "You are not in ml-leads or data-science." in response.text()
    assert not Vote.objects.exists()
    request.refresh_from_db()
    assert request.decision == Decision.PENDING
    outsider.assert_clean()


def test_hostile_model_text_fires_no_dialog_on_any_page(
    sign_in, live_server, policies, requester, scientist1
):
    request = make_hostile_request(
        requester=requester, voter=scientist1, decision="reject", text=HOSTILE
    )
    name = quote(HOSTILE, safe="")

    admin = sign_in("admin")
    for path in (
        "/",
        f"/models/{name}/",
        f"/models/{name}/versions/2/",
        f"/models/{name}/versions/1/request/",
        f"/models/{name}/compare?a=2&b=1",
        "/reviews/",
        f"/reviews/{request.pk}/",
        "/audit/",
    ):
        page = admin.goto(path)
        page.wait_for_load_state("load")
        assert HOSTILE in page.inner_text("body"), path  # shown as text, not run as markup
        assert page.locator("img[src=x]").count() == 0, path
    admin.assert_clean()


# -- rollback and break glass ----------------------------------------------------------------------


ROLLBACK_POLICIES = policies_with(
    rollback=True, break_glass="ratify_within: 24h, on_unratified: revert"
)


def test_rollback_button_puts_the_previous_holder_back(sign_in, fraud, mlflow_client, worker, lead):
    policies_load(text=ROLLBACK_POLICIES)
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

    voting.vote_cast(request_id=rollback.pk, user=lead, decision="approve")
    wait_for(
        lambda: mlflow_client.get_version(fraud, 3).stage == "Production",
        timeout=60,
        message="v3 back in Production in MLflow",
    )
    wait_for(
        lambda: TransitionRequest.objects.get(pk=rollback.pk).execution == Execution.DONE,
        timeout=60,
        message="the rollback's execution to be done",
    )
    assert mlflow_client.get_version(fraud, 5).stage == "Archived"
    wait_for(
        lambda: not TransitionRequest.objects.get(pk=rollback.pk).awaiting_mirror,
        timeout=60,
        message="the rollback mirrored by its follow-up sync",
    )
    page = requester.goto(f"/models/{fraud}/")
    current = page.locator("#holder-timeline li.is-current[data-target='Production']")
    assert "v3" in current.inner_text() and "rollback" in current.inner_text()
    requester.shot("model-timeline-after-rollback.png")
    requester.assert_clean()


def test_break_glass_form_needs_a_reason_keeps_it_and_moves_once_confirmed(
    sign_in, fraud, mlflow_client, worker
):
    policies_load(text=ROLLBACK_POLICIES)
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

    # Spaces pass the browser's check, not the server's: the form comes back open, as chosen.
    page.select_option("#break-glass-version", "4")
    page.select_option("#break-glass-target", "@champion")
    page.fill("#break-glass-reason", "   ")
    page.click("#break-glass-submit")
    page.wait_for_url(re.compile(r".*#break-glass$"))
    assert "the reason is required" in page.inner_text(".messages")
    assert page.locator("#break-glass").get_attribute("open") is not None
    assert page.locator("#break-glass-version").input_value() == "4"
    assert page.locator("#break-glass-target").input_value() == "@champion"
    assert page.locator("#break-glass-reason").input_value() == "   "
    oncall.shot("break-glass-form-refused.png")

    page.select_option("#break-glass-version", "5")
    page.select_option("#break-glass-target", "Production")
    page.fill("#break-glass-reason", "v3 approves every payment since 02:10; INC-4411")
    oncall.shot("break-glass-form.png")
    page.click("#break-glass-submit")
    move = page.locator("#break-glass-move")
    assert move.inner_text() == f"Move {fraud} v5 → Production now, replacing v3"
    assert "INC-4411" in page.inner_text("#break-glass-reason-shown")
    assert not TransitionRequest.objects.filter(kind=RequestKind.BREAK_GLASS).exists()
    oncall.shot("break-glass-confirm.png")

    page.click("#break-glass-back")  # Back: the form again, as filled in
    page.wait_for_url(re.compile(r".*#break-glass$"))
    assert page.locator("#break-glass").get_attribute("open") is not None
    assert page.locator("#break-glass-version").input_value() == "5"
    assert page.locator("#break-glass-target").input_value() == "Production"
    assert "INC-4411" in page.locator("#break-glass-reason").input_value()
    page.click("#break-glass-submit")
    page.click("#break-glass-confirm-submit")
    page.wait_for_url(re.compile(r".*/reviews/\d+/$"))
    assert "break glass" in page.locator("#request-kind").inner_text()
    wait_for(
        lambda: mlflow_client.get_version(fraud, 5).stage == "Production",
        timeout=60,
        message="v5 in Production in MLflow",
    )
    wait_for(
        lambda: TransitionRequest.objects.filter(kind=RequestKind.RATIFICATION).exists(),
        timeout=60,
        message="the break glass's ratification to open",
    )
    page.reload()
    assert "Ratification: #" in page.locator("#request-kind").inner_text()
    oncall.shot("break-glass-request.png")
    oncall.assert_clean()
