"""Every page passes an automated accessibility audit, in a real browser, as each role.

axe-core (bundled by the axe-playwright-python package) audits each page as Debian's Chromium
renders it, charts drawn, for the requester, a reviewer, staff and an anonymous visitor (the
sign-in page, also after a refused sign-in). No serious or critical violation is allowed. The
keyboard path is checked too: a skip link first, and after a refused form the focus on the
message that says why.
"""

from __future__ import annotations

import os

import pytest
from axe_playwright_python.sync_playwright import Axe

from registry.models import ChangeKind, ModelVersion, RegistryChange, Stage
from reviews.conversation import comments
from reviews.decisions import opening, voting
from reviews.emergency.break_glass import break_glass_move
from reviews.emergency.ratification import ratification_open
from reviews.emergency.rollback import rollback_request_create
from reviews.execution.attestation import QUEUE as TRANSITIONS
from reviews.models import Decision, Execution, TransitionRequest, VoteChoice
from reviews.policies.loading import policies_load
from tests.browser import SCREENSHOTS, chromium
from tests.factories import cache_all_history, make_model, make_version
from tests.policy_files import policies_with

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw"  # the cast's password (tests/conftest.py)
BLOCKING = {"serious", "critical"}


# Production escalates to three data-science approvals while a version's evidence is unknown
# (none is read here): every Production request shows why it needs that many.
ESCALATING = (
    "    escalate: [{when: requirements_changed, require: [{group: data-science, approvals: 3}]}]\n"
)


@pytest.fixture
def landscape(policies, rq_queue):
    """A model with history, a pending request with votes and comments, decided ones, and a
    second model that went through break glass (ratification pending) and is being rolled back;
    production requests escalated; and the pages to visit."""
    cast = policies
    policies_load(
        text=policies_with(
            rollback=True, break_glass="ratify_within: 24h, on_unratified: alert"
        ).replace("    archive_existing: true\n", "    archive_existing: true\n" + ESCALATING, 1)
    )
    model = make_model("fraud-detector", description="Scores card payments.")
    specs = [
        (Stage.PRODUCTION, {"accuracy": 0.85, "f1": 0.80, "log_loss": 0.40}),
        (Stage.NONE, {"accuracy": 0.86, "f1": 0.79, "log_loss": 0.37}),
        (Stage.NONE, {"accuracy": 0.90, "f1": 0.84, "log_loss": 0.31}),
    ]
    versions = [
        make_version(model, number, stage=stage, metrics=metrics)
        for number, (stage, metrics) in enumerate(specs, start=1)
    ]
    for version in versions:
        cache_all_history(version)
    first_observed(model, versions)
    pending = opening.request_create(
        model=model.name, version=3, target="Production", requester=cast["requester"]
    )
    voting.vote_cast(request_id=pending.pk, user=cast["scientist1"], decision=VoteChoice.APPROVE)
    staging = opening.request_create(
        model=model.name, version=2, target="Staging", requester=cast["requester"]
    )
    voting.vote_cast(
        request_id=staging.pk,
        user=cast["scientist2"],
        decision=VoteChoice.REJECT,
        comment="Recall fell on the new-merchant slice.",
    )
    failed = opening.request_create(
        model=model.name, version=3, target="Staging", requester=cast["requester"]
    )
    TransitionRequest.objects.filter(pk=failed.pk).update(
        decision=Decision.APPROVED, execution=Execution.FAILED, execution_error="MLflow: 503"
    )
    comments.comment_post(request_id=pending.pk, user=cast["lead"], body="Is the drift check done?")
    comments.comment_post(
        request_id=pending.pk, user=cast["requester"], body="Yes: see run 12, no drift above 2%."
    )
    emergency = emergency_history(cast)
    rq_queue(TRANSITIONS)  # the break-glass move's job: no worker runs here
    everyone = [
        "/",
        f"/models/{model.name}/",
        f"/models/{model.name}/versions/3/",
        f"/models/{model.name}/versions/3/request/",
        f"/models/{model.name}/compare?a=3&b=1",
        "/reviews/",
        f"/reviews/{pending.pk}/",
        f"/reviews/{staging.pk}/",
        f"/reviews/{failed.pk}/",
        "/settings/notifications/",
        "/models/churn-scorer/",
        *(f"/reviews/{request.pk}/" for request in emergency),
    ]
    staff = [
        "/audit/",
        "/analytics/",
        "/break-glass/",
        "/admin/",
        "/admin/reviews/approvalpolicy/",
        "/admin/reviews/transitionrequest/",
        f"/admin/reviews/transitionrequest/{pending.pk}/change/",
    ]
    return {"everyone": everyone, "staff": staff, "pending": pending}


def first_observed(model, versions: list[ModelVersion]) -> None:
    """The changes the sync records when it first mirrors a model: the model, and each version
    where it stands (what the model page's holder history starts from)."""
    RegistryChange.objects.create(model=model, kind=ChangeKind.MODEL_CREATED)
    for version in versions:
        RegistryChange.objects.create(
            model=model,
            version=version,
            kind=ChangeKind.VERSION_CREATED,
            new={"stage": version.stage, "aliases": list(version.aliases)},
        )


def emergency_history(cast) -> list[TransitionRequest]:
    """`churn-scorer`: v1 held Production until oncall broke glass to move v2 there (recorded as
    a sync records it); the ratification is pending with a comment, and a rollback to v1 is
    requested. Returns the break-glass move, its ratification and the rollback."""
    model = make_model("churn-scorer", description="Predicts who cancels this month.")
    v1 = make_version(model, 1, stage=Stage.PRODUCTION, metrics={"accuracy": 0.88, "f1": 0.81})
    v2 = make_version(model, 2, metrics={"accuracy": 0.91, "f1": 0.83})
    for version in (v1, v2):
        cache_all_history(version)
    first_observed(model, [v1, v2])
    move = break_glass_move(
        model=model.name,
        version=2,
        target="Production",
        user=cast["outsider"],
        reason="INC-42: v1 scores every new customer as churning.",
    )
    move.caused_changes.add(
        RegistryChange.objects.create(
            model=model, version=v1, kind=ChangeKind.STAGE_CHANGED, old="Production", new="Archived"
        ),
        RegistryChange.objects.create(
            model=model, version=v2, kind=ChangeKind.STAGE_CHANGED, old="None", new="Production"
        ),
    )
    ModelVersion.objects.filter(pk=v1.pk).update(stage=Stage.ARCHIVED)
    ModelVersion.objects.filter(pk=v2.pk).update(stage=Stage.PRODUCTION)
    TransitionRequest.objects.filter(pk=move.pk).update(execution=Execution.DONE)
    ratification = ratification_open(TransitionRequest.objects.get(pk=move.pk))
    assert ratification is not None
    voting.vote_cast(request_id=ratification.pk, user=cast["scientist1"], decision="approve")
    comments.comment_post(
        request_id=ratification.pk, user=cast["lead"], body="Was INC-42 reproduced on v2?"
    )
    rollback = rollback_request_create(
        model=model.name, target="Production", requester=cast["lead"], comment="v2 drifts too."
    )
    return [move, ratification, rollback]


class Visitor:
    """One role's browser context, signed in unless anonymous."""

    def __init__(self, browser, base: str, username: str | None, *, width=1280):
        self.base = base
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        if username:
            self.sign_in(username, PASSWORD)
            self.page.wait_for_url(f"{base}/")

    def sign_in(self, username: str, password: str) -> None:
        self.page.goto(f"{self.base}/accounts/login/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")

    def open(self, path: str, status: int = 200):
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == status, (
            path,
            response and response.status,
        )
        self.page.wait_for_load_state("networkidle")
        return self.page


def blocking_violations(page) -> list[str]:
    """The serious and critical violations axe-core finds on the page as it stands."""
    results = Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(" ".join(node["target"]) for node in violation["nodes"][:8])
        for violation in results.response["violations"]
        if violation["impact"] in BLOCKING
    ]


def test_every_page_passes_the_audit_as_every_role(live_server, landscape):
    found: dict[tuple[str, str], list[str]] = {}
    visits = {
        "requester": landscape["everyone"],
        "lead": landscape["everyone"],
        "admin": landscape["everyone"] + landscape["staff"],
    }
    with chromium() as browser:
        anonymous = Visitor(browser, live_server.url, None)
        anonymous.open("/accounts/login/")
        if problems := blocking_violations(anonymous.page):
            found["anonymous", "/accounts/login/"] = problems
        anonymous.sign_in("lead", "not the password")  # refused: the error box is audited too
        if problems := blocking_violations(anonymous.page):
            found["anonymous", "/accounts/login/ refused"] = problems
        anonymous.context.close()

        for username, paths in visits.items():
            role = Visitor(browser, live_server.url, username)
            for path in paths:
                role.open(path)
                if problems := blocking_violations(role.page):
                    found[username, path] = problems
            # The error pages, and a form the server refused (a rejection needs a comment).
            role.open("/reviews/999999/", status=404)
            if problems := blocking_violations(role.page):
                found[username, "404"] = problems
            role.open(f"/reviews/{landscape['pending'].pk}/")
            if role.page.locator("button[value=reject]").count():
                role.page.click("button[value=reject]")
                role.page.wait_for_selector(".field-error")
                if problems := blocking_violations(role.page):
                    found[username, "refused vote"] = problems
            role.context.close()
    assert not found, "\n".join(
        f"{who} {path}: {problem}"
        for (who, path), problems in found.items()
        for problem in problems
    )


def test_no_page_of_quorum_is_wider_than_a_phone(live_server, landscape):
    """At 390 px nothing scrolls sideways: tables scroll inside their own box, navigation and
    buttons wrap. Django's own admin pages are left out (they are Django's layout)."""
    ours = [path for path in landscape["staff"] if not path.startswith("/admin/")]
    too_wide: dict[str, int] = {}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        anonymous = Visitor(browser, live_server.url, None, width=390)
        anonymous.open("/accounts/login/?next=/reviews/")
        if (width := page_width(anonymous.page)) > 390:
            too_wide["/accounts/login/"] = width
        anonymous.context.close()
        admin = Visitor(browser, live_server.url, "admin", width=390)
        for path in landscape["everyone"] + ours:
            admin.open(path)
            if (width := page_width(admin.page)) > 390:
                too_wide[path] = width
        admin.open(f"/reviews/{landscape['pending'].pk}/")
        admin.page.screenshot(path=SCREENSHOTS / "phone-request.png", full_page=True)
        admin.open("/models/fraud-detector/")
        admin.page.screenshot(path=SCREENSHOTS / "phone-model.png", full_page=True)
        admin.open("/break-glass/")
        admin.page.screenshot(path=SCREENSHOTS / "phone-break-glass.png", full_page=True)
        admin.open("/models/fraud-detector/versions/3/")
        admin.page.screenshot(path=SCREENSHOTS / "phone-version.png", full_page=True)
        admin.open("/models/churn-scorer/")
        admin.page.screenshot(path=SCREENSHOTS / "phone-model-emergency.png", full_page=True)
        admin.context.close()
        # The same pages at a desktop's width, for a reader to compare.
        desktop = Visitor(browser, live_server.url, "admin", width=1440)
        for path, name in (
            (f"/reviews/{landscape['pending'].pk}/", "request-1440.png"),
            ("/models/fraud-detector/versions/3/", "version-1440.png"),
            ("/models/fraud-detector/", "model-1440.png"),
            ("/break-glass/", "break-glass-report-1440.png"),
            ("/models/churn-scorer/", "model-emergency-1440.png"),
        ):
            desktop.open(path)
            desktop.page.screenshot(path=SCREENSHOTS / name, full_page=True)
        desktop.context.close()
    assert not too_wide, f"pages wider than 390 px (path: width): {too_wide}"


def page_width(page) -> int:
    return int(page.evaluate("() => document.documentElement.scrollWidth"))


def test_the_audit_can_fail(live_server, landscape):
    """The check above is not vacuous: an unlabelled field on a page is found."""
    with chromium() as browser:
        role = Visitor(browser, live_server.url, "lead")
        page = role.open("/reviews/")
        page.evaluate(
            """() => document.querySelector("main").insertAdjacentHTML(
                "beforeend", '<input type="text" name="unlabelled">')"""
        )
        problems = blocking_violations(page)
        role.context.close()
    assert any(problem.startswith("label (critical)") for problem in problems), problems


def test_a_skip_link_comes_first_and_leads_to_the_content(live_server, landscape):
    with chromium() as browser:
        role = Visitor(browser, live_server.url, "lead")
        page = role.open("/reviews/")
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.textContent")
        assert focused == "Skip to the content"
        assert page.locator(".skip-link").is_visible()
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "main"
        role.context.close()


def test_focus_moves_to_the_refusal_after_a_refused_form(live_server, landscape):
    pending = landscape["pending"]
    with chromium() as browser:
        anonymous = Visitor(browser, live_server.url, None)
        anonymous.sign_in("lead", "not the password")
        anonymous.page.wait_for_selector(".error-box")
        assert anonymous.page.evaluate("() => document.activeElement.className") == "error-box"
        anonymous.context.close()

        reviewer = Visitor(browser, live_server.url, "lead")
        page = reviewer.open(f"/reviews/{pending.pk}/")
        page.click("button[value=reject]")  # no comment: refused
        page.wait_for_selector("#vote-comment-error")
        assert page.evaluate("() => document.activeElement.id") == "vote-comment-error"
        assert "Say why you reject" in page.evaluate("() => document.activeElement.textContent")

        # Refused because the request was decided meanwhile: the refusal, above the kept text,
        # has focus.
        page.fill("#vote-comment", "Looks right.")
        TransitionRequest.objects.filter(pk=pending.pk).update(decision=Decision.CANCELLED)
        page.click("button[value=approve]")
        page.wait_for_selector("#vote-refusal")
        focused = page.evaluate("() => document.activeElement.textContent")
        assert "became cancelled" in focused and "send your text again" in focused
        reviewer.context.close()
