"""The registry pages: models list, model, version, compare; sign-in and their errors."""

from __future__ import annotations

import re

import pytest

from registry.models import VersionContent
from tests.factories import HOSTILE, make_content, make_model, make_version
from tests.pages import chart_data
from tests.pages import page_source as text_of

# Pages under test read cached history only (conftest's `no_mlflow`): an accidental MLflow call
# fails fast and shows up as the "history unavailable" note, which the tests check for.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]


# --- login --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/models/fraud/",
        "/models/fraud/versions/1/",
        "/models/fraud/versions/abc/",
        "/models/fraud/compare?a=1&b=2",
        "/models/nope/compare",
    ],
)
def test_anonymous_visitor_is_sent_to_login(client, fraud, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_login_form_signs_in_and_returns_to_the_page_asked_for(client, reviewer):
    page = client.get("/accounts/login/?next=/models/fraud/")
    assert page.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in text_of(page)
    response = client.post(
        "/accounts/login/",
        {"username": "reviewer", "password": reviewer.raw_password, "next": "/models/fraud/"},
    )
    assert response.status_code == 302 and response["Location"] == "/models/fraud/"


def test_wrong_password_says_so(client, reviewer):
    response = client.post("/accounts/login/", {"username": "reviewer", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in text_of(response)


def test_logout_is_a_post_form_with_csrf(browser, reviewer):
    page = text_of(browser.get("/"))
    form = re.search(r'<form method="post" action="/accounts/logout/">(.*?)</form>', page, re.S)
    assert form and 'name="csrfmiddlewaretoken"' in form.group(1)
    assert "reviewer" in page
    assert browser.get("/accounts/logout/").status_code == 405  # GET changes nothing
    assert browser.post("/accounts/logout/").status_code == 302
    assert browser.get("/").status_code == 302


# --- models list --------------------------------------------------------------------------


def test_models_list_shows_counts_holders_aliases_and_latest(browser, fraud):
    response = browser.get("/")
    assert response.status_code == 200
    row = re.search(
        r"<tr>\s*<td class=\"name\"><a href=\"/models/fraud/\">.*?</tr>", text_of(response), re.S
    )
    assert row, "fraud is listed"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    assert cells[1] == "4"  # the deleted v5 is not counted
    assert ">v4<" in cells[2]  # latest live version
    assert "/models/fraud/versions/2/" in cells[3]  # Production
    assert "/models/fraud/versions/4/" in cells[4]  # Staging
    assert "@champion → v4" in cells[5]


def test_models_list_filters_by_name(browser, fraud):
    make_model("churn")
    response = browser.get("/", {"q": "FRA"})
    assert "/models/fraud/" in text_of(response)
    assert "/models/churn/" not in text_of(response)
    empty = browser.get("/", {"q": "nothing-like-this"})
    assert "No model name contains “nothing-like-this”" in text_of(empty)


def test_models_list_hides_deleted_models_unless_asked(browser):
    make_model("alive")
    make_model("gone", deleted=True)
    assert "/models/gone/" not in text_of(browser.get("/"))
    shown = text_of(browser.get("/", {"deleted": "1"}))
    assert "/models/gone/" in shown and "deleted" in shown


def test_models_list_is_paginated_and_keeps_the_filter(browser):
    for number in range(30):
        make_model(f"m{number:02d}")
    first = text_of(browser.get("/", {"q": "m"}))
    assert "Page 1 of 2" in first and "/models/m24/" in first and "/models/m25/" not in first
    assert 'href="?q=m&amp;page=2"' in first
    second = text_of(browser.get("/", {"q": "m", "page": "2"}))
    assert "/models/m25/" in second and "/models/m00/" not in second
    assert browser.get("/", {"page": "junk"}).status_code == 200


# --- one model ----------------------------------------------------------------------------


def test_model_page_lists_versions_with_main_metrics_first(browser, fraud, settings):
    response = browser.get("/models/fraud/")
    assert response.status_code == 200
    page = text_of(response)
    headers = re.findall(r'<th scope="col" class="num">(.*?)</th>', page)
    assert headers == ["accuracy", "f1", "log_loss", "zeta_score"]
    assert "Scores card payments." in page and "risk" in page
    assert '<span class="badge stage-production">Production</span>' in page
    assert "@champion" in page
    assert f'href="http://mlflow.example/#/experiments/1/runs/{fraud[1][1].run_id}"' in page
    # The Plotly chart gets every live version, in order, for every main metric.
    (chart,) = chart_data(response)["charts"]
    assert chart["target"] == "chart-metrics" and 'id="chart-metrics"' in page
    accuracy = next(s for s in chart["series"] if s["name"] == "accuracy")
    assert accuracy["x"] == ["v1", "v2", "v3", "v4"]
    assert accuracy["y"] == [0.80, 0.85, 0.84, 0.88]


def test_model_page_caps_metric_columns(browser):
    model = make_model("wide")
    make_version(model, metrics={f"m{i:02d}": float(i) for i in range(20)} | {"recall": 0.5})
    page = text_of(browser.get("/models/wide/"))
    headers = re.findall(r'<th scope="col" class="num">(.*?)</th>', page)
    assert headers == ["recall", "m00", "m01", "m02", "m03", "m04"]


def test_model_page_hides_deleted_versions_behind_a_toggle(browser, fraud):
    page = text_of(browser.get("/models/fraud/"))
    assert "/models/fraud/versions/5/" not in page
    assert "Show 1 deleted" in page
    shown = text_of(browser.get("/models/fraud/", {"deleted": "1"}))
    assert '<tr class="is-deleted">' in shown and "/models/fraud/versions/5/" in shown


def test_unknown_model_is_a_clear_404(browser):
    response = browser.get("/models/no-such-model/")
    assert response.status_code == 404
    assert "There is no registered model named “no-such-model”." in text_of(response)


# --- one version --------------------------------------------------------------------------


def test_version_page_shows_metrics_params_tags_description_and_history(browser, fraud):
    model, versions = fraud
    versions[2].description = "Retrained on\nMarch data."
    versions[2].save()
    response = browser.get("/models/fraud/versions/3/")
    assert response.status_code == 200
    page = text_of(response)
    assert "Retrained on<br>March data." in page
    assert re.search(r"<th scope=\"row\">log_loss</th><td class=\"num\">0.4100</td>", page)
    assert re.search(r"<th scope=\"row\">penalty</th><td class=\"break\">l2</td>", page)
    assert re.search(r"<th scope=\"row\">data</th><td class=\"break\">2026-03</td>", page)
    charts = chart_data(response)["charts"]
    assert [c["title"] for c in charts] == ["accuracy", "f1", "log_loss", "zeta_score"]
    assert charts[0]["series"][0]["x"] == [0, 1, 2, 3, 4]
    assert all(f'id="{c["target"]}"' in page for c in charts)
    assert "History unavailable" not in page


def test_version_page_shows_the_content_digest_and_its_files(browser, fraud):
    _, versions = fraud
    stored = make_content(versions[2], {"MLmodel": b"m", "model.pkl": b"w" * 2000})

    page = text_of(browser.get("/models/fraud/versions/3/"))

    assert f'<code class="break" id="content-digest">sha256:{stored.digest}</code>' in page
    assert "(2 files, 2.0 kB)" in page


def test_version_page_says_why_the_content_is_unknown(browser, fraud):
    _, versions = fraud
    make_content(versions[2], reason=f"its files could not be read: {HOSTILE}")

    page = text_of(browser.get("/models/fraud/versions/3/"))

    assert "<strong>unknown</strong>:" in page and 'id="content-digest"' not in page
    assert "its files could not be read: &lt;img src=x onerror=alert(1)&gt;" in page


def test_version_page_says_the_content_is_not_read_yet(browser, fraud):
    # The factories store a digest with every version, as the digest job would; v3's is not
    # read yet.
    VersionContent.objects.filter(version=fraud[1][2]).delete()
    page = text_of(browser.get("/models/fraud/versions/3/"))

    assert 'id="content-waiting">not read from MLflow yet' in page


def test_compare_control_defaults_to_the_production_version(browser, fraud):
    page = text_of(browser.get("/models/fraud/versions/3/"))
    form = re.search(r'<form method="get" action="/models/fraud/compare".*?</form>', page, re.S)
    assert form
    assert '<input type="hidden" name="a" value="3">' in form.group(0)
    assert re.search(r'<option value="2" selected>v2 · Production</option>', form.group(0))
    assert 'value="5"' not in form.group(0)  # deleted versions are not offered
    assert 'value="3"' not in form.group(0).replace('name="a" value="3"', "")


def test_compare_control_falls_back_to_the_champion(browser, fraud):
    # Viewing the Production version itself: the natural baseline is the champion.
    page = text_of(browser.get("/models/fraud/versions/2/"))
    assert re.search(r'<option value="4" selected>v4 · Staging · @champion</option>', page)


def test_compare_control_without_production_or_champion_preselects_nothing(browser):
    model = make_model("plain")
    make_version(model, run_id="")
    make_version(model, run_id="")
    page = text_of(browser.get("/models/plain/versions/2/"))
    assert '<option value="1">v1</option>' in page and "selected" not in page


@pytest.mark.parametrize("version", ["abc", "1.5", "-1", "٣", "1e3"])
def test_non_integer_version_is_a_404(browser, fraud, version):
    response = browser.get(f"/models/fraud/versions/{version}/")
    assert response.status_code == 404
    assert "is not a version number" in text_of(response)


@pytest.mark.parametrize("version", ["9", "0", "99999999999"])
def test_unknown_version_is_a_404(browser, fraud, version):
    response = browser.get(f"/models/fraud/versions/{version}/")
    assert response.status_code == 404
    assert f"Model “fraud” has no version {int(version)}." in text_of(response)


def test_deleted_version_page_says_it_is_deleted(browser, fraud):
    response = browser.get("/models/fraud/versions/5/")
    assert response.status_code == 200
    assert "deleted in MLflow" in text_of(response)


# --- compare ------------------------------------------------------------------------------


def test_compare_page_shows_deltas_coloured_by_direction(browser, fraud):
    response = browser.get("/models/fraud/compare", {"a": "4", "b": "2"})
    assert response.status_code == 200
    page = text_of(response)

    def row(key):
        found = re.search(rf'<tr class="([^"]*)">\s*<th scope="row">{key} .*?</tr>', page, re.S)
        assert found, key
        return found

    accuracy = row("accuracy")
    assert accuracy.group(1) == "is-better" and "+0.0300" in accuracy.group(0)
    f1 = row("f1")
    assert f1.group(1) == "is-worse" and "−0.0100" in f1.group(0)
    log_loss = row("log_loss")  # lower is better: 0.35 against 0.40 is an improvement
    assert log_loss.group(1) == "is-better" and "−0.0500" in log_loss.group(0)
    assert "−12.5%" in log_loss.group(0)

    charts = chart_data(response)["charts"]
    bars = charts[0]
    assert bars["kind"] == "bar" and [s["name"] for s in bars["series"]] == ["v4", "v2"]
    assert bars["series"][0]["x"] == ["accuracy", "f1", "log_loss", "zeta_score"]
    # The change against the baseline, per metric: a 0.01 drop is a bar of its own, coloured
    # by direction (log_loss went down: better).
    [change] = charts[1]["series"]
    assert charts[1]["kind"] == "change"
    assert change["y"] == ["accuracy", "f1", "log_loss", "zeta_score"]
    assert change["tones"] == ["better", "worse", "better", "better"]
    assert change["labels"][1] == "−0.0100 (−1.3%)"
    assert change["x"][2] == pytest.approx(-12.5)
    overlaid = charts[2]
    assert overlaid["title"] == "accuracy" and [s["name"] for s in overlaid["series"]] == [
        "v4",
        "v2",
    ]


def test_compare_page_highlights_changed_params_and_tags(browser, fraud):
    page = text_of(browser.get("/models/fraud/compare", {"a": "4", "b": "2"}))
    assert re.search(
        r'<tr class="is-changed">\s*<th scope="row">penalty <span[^>]*>\(differs\)</span></th>'
        r'\s*<td class="break">l1</td>\s*<td class="break">l2</td>',
        page,
    )
    assert re.search(r'<tr>\s*<th scope="row">owner</th>', page)  # same on both sides
    assert "2 of 2 differ" in page  # params: alpha and penalty
    assert "1 of 2 differ" in page  # tags: data only


def test_compare_page_marks_keys_only_one_side_has(browser):
    model = make_model("sparse")
    make_version(model, params={"alpha": 1}, run_id="")
    make_version(model, params={"beta": 2}, run_id="")
    page = text_of(browser.get("/models/sparse/compare", {"a": "2", "b": "1"}))
    assert re.search(
        r'alpha.*?<span class="absent">absent</span>.*?<td class="break">1</td>', page, re.S
    )


@pytest.mark.parametrize(
    "query",
    [{}, {"a": "1"}, {"b": "2"}, {"a": "x", "b": "2"}, {"a": "1", "b": ""}, {"a": "1", "b": "2.0"}],
)
def test_compare_without_two_version_numbers_is_a_400(browser, fraud, query):
    response = browser.get("/models/fraud/compare", query)
    assert response.status_code == 400
    assert "Choose two versions to compare" in text_of(response)


def test_compare_with_an_unknown_version_is_a_404(browser, fraud):
    response = browser.get("/models/fraud/compare", {"a": "1", "b": "42"})
    assert response.status_code == 404
    assert "has no version 42" in text_of(response)
    assert browser.get("/models/nope/compare", {"a": "1", "b": "2"}).status_code == 404


def test_unknown_address_is_a_404_page_not_a_debug_dump(browser):
    response = browser.get("/no/such/page/")
    assert response.status_code == 404
    assert "There is nothing at this address." in text_of(response)
