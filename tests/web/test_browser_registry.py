"""One real browser through the registry pages: sign in, models, a model, a version, compare.

Real everything: runs logged to the test MLflow server, mirrored by the sync, history fetched by
the pages on first view, plotly.js served from our static files, Debian's Chromium driving it.
Screenshots land in var/screenshots/ for a human to look at.
"""

from __future__ import annotations

import pytest

from registry.models import ModelVersion, Stage
from registry.sync import sync_registry
from tests.browser import SCREENSHOTS, chromium
from tests.factories import make_model, make_user, make_version
from tests.mlflow_registry import register_fraud_model, register_with_metrics

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_reviewer_signs_in_and_compares_versions_with_charts(
    live_server, mlflow_client, unique_name
):
    name = f"fraud-{unique_name[-6:]}"
    register_fraud_model(mlflow_client, name)
    sync_registry(model=name, client=mlflow_client)
    assert ModelVersion.objects.filter(model__name=name).count() == 5
    # Neighbours in the list, mirrored directly: only their rows are looked at.
    for other, production in (("churn-weekly", 2), ("credit-limit", 3)):
        neighbour = make_model(other, tags={"team": "growth"})
        for number in range(1, 4):
            make_version(
                neighbour,
                stage=Stage.PRODUCTION if number == production else Stage.NONE,
                aliases=["champion"] if number == production else [],
                metrics={"accuracy": 0.7 + number / 50, "f1": 0.6 + number / 40},
            )
    user = make_user("browser-reviewer")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    errors: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        page.goto(f"{live_server.url}/")
        assert "/accounts/login/" in page.url
        page.screenshot(path=SCREENSHOTS / "login.png")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", user.raw_password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

        row = page.locator("tr", has=page.locator(f"a[href='/models/{name}/']"))
        assert row.locator("td").nth(1).inner_text() == "5"
        assert "@champion → v3" in row.inner_text()
        page.screenshot(path=SCREENSHOTS / "models.png", full_page=True)

        row.locator(f"a[href='/models/{name}/']").click()
        page.wait_for_selector("#chart-metrics.js-plotly-plot .main-svg")
        assert page.locator("#chart-metrics .scatterlayer .trace").count() == 5
        page.screenshot(path=SCREENSHOTS / "model.png", full_page=True)

        page.click(f"a[href='/models/{name}/versions/4/']")
        page.wait_for_selector("#chart-history-0.js-plotly-plot .main-svg")
        assert page.locator(".chart-grid .js-plotly-plot").count() == 2  # accuracy, log_loss
        assert "History unavailable" not in page.content()
        assert page.locator("#compare-b").input_value() == "3"  # the Production version
        page.screenshot(path=SCREENSHOTS / "version.png", full_page=True)

        page.click("form[action$='/compare'] button[type=submit]")
        page.wait_for_url("**/compare?a=4&b=3")
        page.wait_for_selector("#chart-comparison.js-plotly-plot .main-svg")
        page.wait_for_selector("#chart-history-1.js-plotly-plot .main-svg")
        assert page.locator("#chart-comparison .barlayer .trace").count() == 2
        assert page.locator("#chart-history-0 .scatterlayer .trace").count() == 2
        assert page.locator("tr.is-changed").count() >= 3  # learning_rate, penalty, dataset
        # The change against v3 per metric: a bar each, green when better, red when worse.
        page.wait_for_selector("#chart-change.js-plotly-plot .main-svg")
        bars = page.locator("#chart-change .barlayer .point path")
        assert bars.count() == 5
        fills = {bars.nth(i).evaluate("e => e.style.fill") for i in range(bars.count())}
        assert fills <= {"rgb(31, 122, 77)", "rgb(179, 54, 47)", "rgb(91, 102, 115)"}, fills
        assert "rgb(31, 122, 77)" in fills and "rgb(179, 54, 47)" in fills
        assert_charts_send_nothing(page)
        page.screenshot(path=SCREENSHOTS / "compare.png", full_page=True)

        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.context.add_cookies(page.context.cookies())
        phone.goto(page.url)
        phone.wait_for_selector("#chart-comparison.js-plotly-plot .main-svg")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "the compare page scrolls sideways on a phone"
        phone.screenshot(path=SCREENSHOTS / "compare-phone.png", full_page=True)
    assert errors == []


# What a reviewer uses on a chart; nothing that would send its data anywhere.
MODE_BAR = ["zoom2d", "pan2d", "resetScale2d", "toImage"]


def assert_charts_send_nothing(page) -> None:
    """Every chart on the page: no "send to cloud" button, no Plotly server, a trimmed mode bar."""
    configs = page.evaluate(
        """() => [...document.querySelectorAll(".js-plotly-plot")].map((chart) => ({
            cloud: chart._context.showSendToCloud,
            server: chart._context.plotlyServerURL,
            buttons: [...chart.querySelectorAll(".modebar-btn")].map(
                (button) => button.getAttribute("data-title")),
        }))"""
    )
    assert configs
    for config in configs:
        assert config["cloud"] is False and config["server"] == "", config
        assert len(config["buttons"]) == len(MODE_BAR), config
    assert page.locator(".modebar-btn[data-title*='Cloud' i]").count() == 0
    assert page.locator(".modebar-btn[data-title*='Chart Studio' i]").count() == 0


def test_nan_points_and_look_alike_names_are_visible_in_a_real_browser(
    live_server, mlflow_client, unique_name
):
    # A name that differs from an honest one by a zero-width space, a run with NaN and ∞ steps.
    name = f"fraud\u200b-{unique_name[-6:]}"
    register_with_metrics(mlflow_client, name, {"accuracy": [0.7, float("nan"), 0.8, float("inf")]})
    sync_registry(model=name, client=mlflow_client)
    user = make_user("browser-nan")

    errors: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", user.raw_password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

        heading = page.locator("h1 .name-suspicious")
        page.goto(f"{live_server.url}/models/{name}/versions/1/")
        page.wait_for_selector("#chart-history-0.js-plotly-plot .main-svg")
        assert "fraud⟨U+200B⟩-" in heading.inner_text()
        assert "ZERO WIDTH SPACE" in heading.get_attribute("title")
        notes = page.locator("#chart-history-0 + .chart-notes li")
        assert notes.all_inner_texts() == ["v1: NaN at step 1, ∞ at step 3 (not drawn)"]
        assert "∞" in page.locator("table").first.inner_text()
        page.screenshot(path=SCREENSHOTS / "version-nan.png", full_page=True)
    assert errors == []
