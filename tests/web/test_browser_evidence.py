"""The evidence packet in a real browser: a candidate that breaks its signature, moves a pin and
was evaluated on other data, against the Production holder; the rule that escalated the request;
an unreadable version said to be unknown. Desktop and phone; screenshots in var/screenshots/."""

from __future__ import annotations

import os
import textwrap

import pytest
from django.db import connection
from playwright.sync_api import expect

from registry import evidence
from registry.models import Stage
from registry.sync import sync_registry
from reviews.decisions import opening
from reviews.policies.loading import policies_load
from tests.browser import SCREENSHOTS, chromium
from tests.mlflow_registry import register_sklearn_version

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POLICIES = textwrap.dedent(
    """
    groups:
      ml-leads: [lead]
      data-science: [scientist1, scientist2, scientist3]
    policies:
      - name: production
        models: ["*"]
        targets: [Production]
        require: [{group: data-science, approvals: 1}]
        escalate:
          - {when: signature_breaking, require: [{group: ml-leads, approvals: 1}]}
          - {when: dataset_changed, require: [{group: data-science, approvals: 2}]}
    """
)
COLUMNS = {"age": "int64", "income": "int64", "city": "object"}


@pytest.fixture
def registry_with_evidence(mlflow_client, unique_name, cast):
    name = f"credit-{unique_name[-6:]}"
    register_sklearn_version(
        mlflow_client,
        name,
        columns=COLUMNS,
        extra_requirements=["requests==2.31.0"],
        datasets=[("loans-2025", "training"), ("holdout-2025", "evaluation")],
    )
    register_sklearn_version(
        mlflow_client,
        name,
        columns={"income": "float64", "city": "object", "region": "object"},
        extra_requirements=["requests==2.32.3", "lightgbm==4.5.0"],
        datasets=[("loans-2025", "training"), ("holdout-2026-q1", "evaluation")],
    )
    # A version whose source holds no model: its artifacts cannot be read.
    run_id = mlflow_client.log_run(
        mlflow_client.experiment_id("evidence-tests"), run_name="empty", params={}, metrics={}
    )
    mlflow_client.create_version(name, source=f"runs:/{run_id}/nothing", run_id=run_id)
    mlflow_client.transition_stage(name, 1, Stage.PRODUCTION)
    sync_registry(model=name, client=mlflow_client)
    evidence.fetch_missing(client=mlflow_client)  # as the worker does after the sync
    policies_load(text=POLICIES)
    request = opening.request_create(
        model=name, version=2, target="Production", requester=cast["requester"]
    )
    return name, request


def sign_in(browser, base: str, username: str, *, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page, errors


def test_request_and_compare_pages_show_the_evidence_on_desktop_and_phone(
    live_server, registry_with_evidence
):
    name, request = registry_with_evidence
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page, errors = sign_in(browser, live_server.url, "scientist1", width=1280, height=900)
        page.goto(f"{live_server.url}/reviews/{request.pk}/")
        packet = page.locator("#evidence-packet")
        signature = packet.locator("#evidence-signature").inner_text()
        assert "breaking: column `age` removed" in signature
        assert "breaking: type of column `income` changed long → double" in signature
        assert "breaking: added required column `region` (string)" in signature
        # The table lists the changed columns first, marked, and can hide the rest.
        rows = packet.locator(".table-signature tbody tr")
        changed = packet.locator(".table-signature tr.signature-changed")
        assert changed.count() == 3 and rows.count() > 3
        assert [rows.nth(i).get_attribute("class") for i in range(3)] == ["signature-changed"] * 3
        assert "changed: was type long" in changed.filter(has_text="income").inner_text()
        assert "removed" in changed.filter(has_text="age").inner_text()
        same = packet.locator(".table-signature tr.signature-same").first
        packet.get_by_label("Only changed columns").set_checked(True)
        expect(same).to_be_hidden()
        assert changed.first.is_visible()
        packet.get_by_label("Only changed columns").set_checked(False)
        expect(same).to_be_visible()
        environment = packet.locator("#evidence-environment").inner_text()
        assert "changed requests ==2.31.0 → ==2.32.3" in environment
        assert "added lightgbm==4.5.0" in environment
        # Above the metrics table it qualifies, once.
        warning = page.locator("#metrics-not-comparable")
        assert "not comparable" in warning.inner_text()
        metrics_top = page.locator(".table-metrics").bounding_box()["y"]
        assert warning.bounding_box()["y"] < metrics_top
        assert page.locator("#dataset-warning").count() == 0
        assert "holdout-2026-q1" in packet.locator("#evidence-data").inner_text()
        rules = page.locator("#escalation").inner_text()
        assert "escalated (signature_breaking)" in rules
        assert "escalated (dataset_changed)" in rules
        assert "The policy alone asks 1 of data-science" in rules
        page.locator("#evidence-packet").scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / "evidence-request.png", full_page=True)

        # The version page shows the same packet against the version it would replace.
        page.goto(f"{live_server.url}/models/{name}/versions/2/")
        version_packet = page.locator("#evidence-packet")
        assert "breaking: column `age` removed" in version_packet.inner_text()
        assert "not comparable" in version_packet.locator("#dataset-warning").inner_text()
        page.screenshot(path=SCREENSHOTS / "evidence-version.png", full_page=True)

        page.goto(f"{live_server.url}/models/{name}/compare?a=3&b=1")
        unknown = page.locator("#evidence-unreadable").inner_text()
        assert "Unknown, not unchanged" in unknown
        assert "the MLmodel file could not be read" in unknown
        assert page.locator("#evidence-signature").inner_text().count("unknown") >= 1
        page.screenshot(path=SCREENSHOTS / "evidence-compare-unreadable.png", full_page=True)

        phone, phone_errors = sign_in(browser, live_server.url, "scientist2", width=390, height=844)
        phone.goto(f"{live_server.url}/reviews/{request.pk}/")
        phone.locator("#evidence-packet").wait_for()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "the request page scrolls sideways on a phone"
        phone.screenshot(path=SCREENSHOTS / "evidence-request-phone.png", full_page=True)
        phone.goto(f"{live_server.url}/models/{name}/compare?a=2&b=1")
        assert "breaking" in phone.locator("#evidence-signature").inner_text()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        phone.screenshot(path=SCREENSHOTS / "evidence-compare-phone.png", full_page=True)
    connection.close()
    assert errors == [] and phone_errors == []
