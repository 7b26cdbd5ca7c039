"""The reviewer analytics page in a real browser: its charts drawn by charts.js with the local
plotly.js within the CSP, desktop and 390 px wide without sideways scrolling. Screenshots land in
var/screenshots/ (analytics-1440.png, analytics-390.png) for a human to look at."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.decisions import voting
from reviews.models import TransitionRequest, Vote
from tests.factories import make_request, make_version

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = (
    "chart-policy-times",
    "chart-group-times",
    "chart-bottleneck",
    "chart-open-age",
    "chart-outcomes",
)


@pytest.fixture
def reviewed(world):
    """Production requests opened days ago and reviewed within hours, one still waiting."""
    people, model = world.people, world.model
    now = timezone.now()
    for number, days in ((4, 12), (5, 6), (6, 3)):
        make_version(model, number, metrics={"accuracy": 0.9, "f1": 0.84, "log_loss": 0.3})
        request = make_request(model.name, number, requester=people["requester"])
        voters = [people["scientist1"], people["lead"], people["scientist2"]][
            : 3 if number < 6 else 1
        ]
        for voter in voters:
            voting.vote_cast(request_id=request.pk, user=voter, decision="approve")
        start = now - timedelta(days=days)
        TransitionRequest.objects.filter(pk=request.pk).update(
            created_at=start, decided_at=start + timedelta(hours=2 * len(voters))
        )
        for hours, vote in enumerate(Vote.objects.filter(request=request).order_by("pk"), 1):
            Vote.objects.filter(pk=vote.pk).update(created_at=start + timedelta(hours=hours * 2))
    return people


def test_staff_read_the_analytics_on_a_desktop_and_a_phone(sign_in, reviewed):
    desktop = sign_in("admin", width=1440, height=900)
    page = desktop.goto("/analytics/")
    for target in CHARTS:
        page.wait_for_selector(f"#{target}.js-plotly-plot .main-svg")
    assert page.locator("#chart-policy-times .barlayer .trace").count() == 4
    assert "production" in page.locator("table").first.inner_text()
    desktop.shot("analytics-1440.png")
    page.select_option("select[name=days]", "90")
    page.click("form.filter button[type=submit]")
    page.wait_for_url("**/analytics/?days=90")
    page.wait_for_selector("#chart-outcomes.js-plotly-plot .main-svg")
    desktop.assert_clean()

    phone = sign_in("admin", width=390, height=844)
    page = phone.goto("/analytics/")
    for target in CHARTS:
        page.wait_for_selector(f"#{target}.js-plotly-plot .main-svg")
    phone.shot("analytics-390.png")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    phone.assert_clean()
