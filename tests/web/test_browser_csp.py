"""Every page passes the Content-Security-Policy, in a real browser, as each role.

The registry is real (runs logged to the test MLflow server and mirrored by the sync, so version
pages draw their Plotly charts), a request is open and voted on, and Debian's Chromium opens the
main pages as the requester, a reviewer, an outsider and an admin, and the admin's pages, the
API docs and the jobs dashboard as the admin. Each page must arrive with the policy and report no
violation (the browser's `securitypolicyviolation` events and its console errors).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.models import ApprovalPolicy, VoteChoice
from tests.browser import PASSWORD, chromium
from tests.mlflow_registry import register_fraud_model

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Runs before any page script, in every page of a context: the browser reports each violation
# as an event on the document.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} ` +
    `(${event.sourceFile}:${event.lineNumber})`
  );
});
"""


@pytest.fixture
def landscape(mlflow_client, unique_name, policies, rq_queue):
    """A synced model with history, an open request with a vote, and the paths to visit."""
    for queue in ("default", "transitions", "sync", "notifications"):
        rq_queue(queue)
    name = f"fraud-{unique_name[-6:]}"
    register_fraud_model(mlflow_client, name)
    sync_registry(model=name, client=mlflow_client)
    request = opening.request_create(
        model=name, version=5, target="Production", requester=policies["requester"]
    )
    voting.vote_cast(
        request_id=request.pk,
        user=policies["scientist1"],
        decision=VoteChoice.APPROVE,
        comment="Looks right.",
    )
    main = [
        "/",
        f"/models/{name}/",
        f"/models/{name}/versions/4/",
        f"/models/{name}/versions/5/request/",
        f"/models/{name}/compare?a=4&b=3",
        "/reviews/",
        f"/reviews/{request.pk}/",
        "/settings/notifications/",
    ]
    policy = ApprovalPolicy.objects.get(name="production").pk
    admin_only = [
        "/audit/",
        "/admin/",
        "/admin/reviews/approvalpolicy/",
        f"/admin/reviews/approvalpolicy/{policy}/change/",
        "/admin/reviews/approvalpolicy/add/",
        "/admin/reviews/transitionrequest/",
        f"/admin/reviews/transitionrequest/{request.pk}/change/",
        f"/admin/auth/user/{User.objects.get(username='lead').pk}/change/",
        "/admin/axes/accessattempt/",
        "/admin/django_rq/",
        "/admin/django_rq/queues/0/",
        "/admin/django_rq/queues/0/finished/",
        "/admin/django_rq/workers/0/",
        "/api/v1/docs",
    ]
    return {"main": main, "admin": admin_only}


class Browser:
    """One role's browser context, signed in, collecting violations page by page."""

    def __init__(self, browser, base: str, username: str | None):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(RECORD_VIOLATIONS)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.page.on(
            "console", lambda m: self.console.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda error: self.console.append(str(error)))
        # What failed to load, by address (the console says only that something did).
        self.failed: list[str] = []
        self.page.on(
            "response",
            lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        if username:
            self.page.goto(f"{base}/accounts/login/")
            self.page.fill("input[name=username]", username)
            self.page.fill("input[name=password]", PASSWORD)
            self.page.click("button[type=submit]")
            self.page.wait_for_url(f"{base}/")

    def problems_on(self, path: str) -> list[str]:
        """Opens `path`; what the policy blocked there, and console errors, as strings."""
        self.console.clear()
        self.failed.clear()
        response = self.page.goto(self.base + path)
        assert response is not None and response.ok, (path, response and response.status)
        policy = dict(
            (directive.strip().partition(" ")[::2])
            for directive in (response.header_value("content-security-policy") or "").split(";")
        )
        assert policy.get("script-src") == "'self'", (path, policy)
        self.page.wait_for_load_state("networkidle")
        return [*self.page.evaluate("window.__cspViolations"), *self.console, *self.failed]


def test_every_page_passes_the_policy_as_every_role(live_server, landscape):
    found: dict[tuple[str, str], list[str]] = {}
    with chromium() as browser:
        visits = {
            None: ["/accounts/login/", "/admin/login/"],
            "requester": landscape["main"],
            "lead": landscape["main"],
            "outsider": landscape["main"],
            "admin": landscape["main"] + landscape["admin"],
        }
        for username, paths in visits.items():
            role = Browser(browser, live_server.url, username)
            for path in paths:
                if problems := role.problems_on(path):
                    found[username or "anonymous", path] = problems
            if username == "requester":
                # The policy must not only be quiet but let the pages work: charts are drawn.
                role.problems_on(landscape["main"][2])
                role.page.wait_for_selector("#chart-history-0.js-plotly-plot .main-svg")
            role.context.close()
    assert found == {}


def test_the_policy_blocks_an_inline_handler_and_the_test_sees_it(live_server, landscape):
    """The check above can fail: markup that slips an inline handler into a page is blocked and
    reported."""
    with chromium() as browser:
        role = Browser(browser, live_server.url, "requester")
        path = landscape["main"][2]
        assert role.problems_on(path) == []
        role.page.evaluate(
            """document.body.insertAdjacentHTML(
                "beforeend", '<img src="/static/favicon.svg" onload="window.ran = 1">')"""
        )
        role.page.wait_for_timeout(500)

        violations = role.page.evaluate("window.__cspViolations")
        ran = role.page.evaluate("window.ran")
        role.context.close()
    assert ran is None
    assert any(v.startswith("script-src") for v in violations), violations
