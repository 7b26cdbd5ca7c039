"""Single sign-on in a real browser: a review link, the provider's sign-in, back on the review,
a vote; then the provider removes the group and the next sign-in loses the right to vote.

The provider is tests/oidc_provider.py in its own process; Debian's Chromium drives the live
server. Screenshots land in var/screenshots/ for a human to look at.
"""

from __future__ import annotations

import copy
import os

import pytest

from reviews.decisions import opening
from reviews.execution import jobs
from reviews.models import Decision, TransitionRequest, Vote
from reviews.policies.loading import policies_load
from tests.browser import SCREENSHOTS, chromium
from tests.factories import GOOD, make_mirror

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POLICIES = """
policies:
  - name: production
    models: ["*"]
    targets: [Production]
    require: [{group: ml-leads, approvals: 1}]
"""


def sign_in_through_the_provider(page, username: str) -> None:
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.fill("input[name=username]", username)
    page.get_by_role("button", name="Continue").click()


def test_a_reviewer_signs_in_at_the_provider_lands_on_the_review_and_votes(
    live_server, sso, settings, cast, rq_queue
):
    # Signing out posts a form that the provider's logout answers: CSP's form-action allows it.
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"].append(sso.url)
    settings.CONTENT_SECURITY_POLICY = policy
    rq_queue(jobs.QUEUE)
    policies_load(text=POLICIES)
    make_mirror(versions={1: ("Production", GOOD), 2: ("None", GOOD), 3: ("None", GOOD)})
    first = opening.request_create(
        model="fraud-detector", version=2, target="Production", requester=cast["requester"]
    )
    second = opening.request_create(
        model="fraud-detector", version=3, target="Production", requester=cast["requester"]
    )
    sso.person("olivia", ["idp-ml-leads"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        review = f"{live_server.url}/reviews/{first.pk}/"
        page.goto(review)
        assert page.url == f"{live_server.url}/accounts/login/?next=/reviews/{first.pk}/"
        page.screenshot(path=SCREENSHOTS / "sso-login.png", full_page=True)
        page.locator("summary").click()
        page.screenshot(path=SCREENSHOTS / "sso-login-break-glass.png", full_page=True)

        sign_in_through_the_provider(page, "olivia")
        page.wait_for_url(review)
        assert page.locator(".who").inner_text() == "olivia"
        page.fill("#vote-comment", "Signed in through the provider.")
        page.click("button[value=approve]")
        page.wait_for_url(review)
        page.screenshot(path=SCREENSHOTS / "sso-voted.png", full_page=True)
        assert TransitionRequest.objects.get(pk=first.pk).decision == Decision.APPROVED

        # The provider takes olivia out of the leads; she signs out (at the provider too).
        sso.person("olivia", [])
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{live_server.url}/accounts/login/")
        assert any(entry["event"] == "logout" for entry in sso.log())

        page.goto(f"{live_server.url}/reviews/{second.pk}/")
        sign_in_through_the_provider(page, "olivia")
        page.wait_for_url(f"{live_server.url}/reviews/{second.pk}/")
        assert page.get_by_role("button", name="Approve").count() == 0
        assert page.locator(".refusal").inner_text() == "You are not in ml-leads."
        page.screenshot(path=SCREENSHOTS / "sso-no-longer-eligible.png", full_page=True)

    # Her approval of the first request stands as cast.
    vote = Vote.objects.get(request=first)
    assert (vote.user.username, vote.groups) == ("olivia", ["ml-leads"])
    assert not second.votes.exists()
