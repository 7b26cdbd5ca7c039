"""The registry pages: models list, model, version, compare; their errors, escaping and cost."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from registry.models import MetricHistory, Stage, VersionContent
from registry.sync import sync_registry
from tests.factories import (
    HOSTILE,
    cache_all_history,
    make_content,
    make_model,
    make_user,
    make_version,
    register_with_metrics,
)

# Pages under test read cached history only (conftest's `no_mlflow`): an accidental MLflow call
# fails fast and shows up as the "history unavailable" note, which the tests check for.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

# Page budgets: session + user, then the page's own queries. They must not grow with the registry.
# The review app adds to every page the navigation's count of requests awaiting the user (one
# query for a user in no group, as here); to the model page its out-of-band banner and request
# history; to the version page the promotion form (no policy here: tests/web/test_views_inbox.py
# pins the page with policies). The models page also reads the sync's status line (one query);
# the model page replays its holders' timeline from the recorded changes (one query, none
# recorded here: tests/insight/test_holder_history.py pins the page with a long history) and
# reads the policies to offer the break-glass form to their on-call members (one query, no
# policy here).
LIST_QUERIES = 7
MODEL_QUERIES = 9
# The promotion form reads related requests in one query; the policy panel the covered targets;
# the signed proofs panel the version's proofs and their revocations; the evidence packet the
# baseline's evidence (the version's own comes with it).
VERSION_QUERIES = 15
COMPARE_QUERIES = 8


@pytest.fixture
def reviewer(db):
    return make_user("reviewer")


@pytest.fixture
def browser(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.fixture
def fraud():
    """A model with five versions: v2 in Production, v4 in Staging and @champion, v5 deleted."""
    model = make_model("fraud", description="Scores card payments.", tags={"team": "risk"})
    specs = [
        (Stage.ARCHIVED, [], {"accuracy": 0.80, "f1": 0.70, "log_loss": 0.50}),
        (Stage.PRODUCTION, [], {"accuracy": 0.85, "f1": 0.75, "log_loss": 0.40}),
        (Stage.NONE, [], {"accuracy": 0.84, "f1": 0.78, "log_loss": 0.41}),
        (Stage.STAGING, ["champion"], {"accuracy": 0.88, "f1": 0.74, "log_loss": 0.35}),
        (Stage.NONE, [], {"accuracy": 0.60}),
    ]
    versions = []
    for number, (stage, aliases, metrics) in enumerate(specs, start=1):
        version = make_version(
            model,
            stage=stage,
            aliases=aliases,
            metrics={**metrics, "zeta_score": 1.0 * number},
            params={"alpha": 0.1 * number, "penalty": "l2" if number < 4 else "l1"},
            tags={"owner": "ana", "data": f"2026-0{number}"},
            deleted=number == 5,
        )
        cache_all_history(version)
        versions.append(version)
    model.refresh_from_db()
    return model, versions


def text_of(response) -> str:
    return response.content.decode()


def chart_data(response) -> dict:
    match = re.search(
        r'<script id="chart-data" type="application/json">(.*?)</script>', text_of(response)
    )
    assert match, "the page embeds no chart data"
    return json.loads(match.group(1))


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


# --- untrusted MLflow text ----------------------------------------------------------------


def test_hostile_names_descriptions_tags_and_metric_keys_are_escaped(browser):
    model = make_model(HOSTILE, description=HOSTILE, tags={HOSTILE: HOSTILE}, aliases={})
    for number in (1, 2):
        version = make_version(
            model,
            description=HOSTILE,
            tags={HOSTILE: HOSTILE},
            params={HOSTILE: f"{HOSTILE}{number}"},
            metrics={HOSTILE: 0.5 + number / 10, "accuracy": 0.9},
            aliases=[f"{HOSTILE}{number}"],
        )
        cache_all_history(version)
    base = reverse("registry:model_detail", args=[HOSTILE])
    pages = [
        browser.get("/", {"q": "img"}),
        browser.get(base),
        browser.get(reverse("registry:version_detail", args=[HOSTILE, 2])),
        browser.get(reverse("registry:compare", args=[HOSTILE]), {"a": "2", "b": "1"}),
        browser.get(reverse("registry:version_detail", args=[HOSTILE, 7])),
    ]
    for response in pages:
        page = text_of(response)
        assert response.status_code in (200, 404)
        assert "<img" not in page, response.request["PATH_INFO"]
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # Inside the chart JSON too: json_script escapes what would close the script element.
    assert "\\u003Cimg src=x onerror=alert(1)\\u003E" in text_of(pages[3])


# --- Quorum's own tags ----------------------------------------------------------------------

CONTENT = "ab" * 32


def proof_tag(model: str, version: int, target: str, *, key=None) -> str:
    """A signed approval proof as Quorum writes it in `quorum.attestation.<target>`: signed with
    the key Quorum signs with, unless another `key` is given (a forgery)."""
    from quorum_cli import attestation as proof
    from reviews.execution.attestation import signed
    from reviews.execution.proof_keys import signer

    statement = {
        "_type": proof.STATEMENT_TYPE,
        "subject": [{"name": proof.subject_name(model, version), "digest": {"sha256": CONTENT}}],
        "predicateType": proof.PREDICATE_TYPE,
        "predicate": {
            "model": {"name": model, "version": version, "run_id": "r", "source": "s"},
            "target": target,
            "request": {"id": 12, "kind": "promotion"},
        },
    }
    return signed(statement, key or signer())


def test_quorums_tags_read_as_what_they_mean_apart_from_the_users(
    browser, fraud, django_assert_max_num_queries
):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import CryptoSigner

    model, versions = fraud
    model.tags = {
        **model.tags,
        "quorum.protected": json.dumps(
            {"request_url": "https://quorum.example/models/fraud/", "targets": ["Production"]}
        ),
    }
    model.save(update_fields=["tags"])
    forger = CryptoSigner(Ed25519PrivateKey.generate())
    versions[1].tags = {
        **versions[1].tags,
        "quorum.pinned": json.dumps({"requests": [12, 14]}),
        "quorum.attestation.Production": proof_tag("fraud", 2, "Production"),
        # A proof for another version, copied here; and one signed by a key Quorum does not use.
        "quorum.attestation.alias.champion": proof_tag("fraud", 4, "@champion"),
        "quorum.attestation.Staging": proof_tag("fraud", 2, "Staging", key=forger),
    }
    versions[1].save(update_fields=["tags"])

    with django_assert_max_num_queries(VERSION_QUERIES):  # reading the tags costs no query
        version_page = browser.get("/models/fraud/versions/2/")
    page = text_of(version_page)
    user_tags = page[page.index("<h2>Tags") :]
    assert "quorum." not in user_tags and '<th scope="row">owner</th>' in user_tags
    assert "Held for review by Quorum: request #12, #14" in page
    assert (
        f'Signed proof for Production ✓ <span class="small break">(subject sha256:{CONTENT[:12]}…)'
        in page
    )
    assert "Proof for @champion ✗" in page and "the proof is for version 4, not version 2" in page
    assert "Proof for Staging ✗" in page and "signed by an unknown key" in page
    assert "payloadType" not in page and "&quot;requests&quot;" not in page  # no raw JSON

    with django_assert_max_num_queries(MODEL_QUERIES):
        model_page = text_of(browser.get("/models/fraud/"))
    assert "Protected by Quorum: Production" in model_page
    assert "request_url" not in model_page and "<dt>team</dt><dd>risk</dd>" in model_page

    # Side by side, two versions differ in their own tags only.
    compare = text_of(browser.get("/models/fraud/compare", {"a": "2", "b": "4"}))
    assert "quorum.pinned" not in compare and "quorum.attestation" not in compare
    assert "1 of 2 differ" in compare


@pytest.mark.parametrize(
    "value",
    [
        HOSTILE,
        json.dumps({"targets": HOSTILE, "requests": [HOSTILE], "payload": HOSTILE}),
        json.dumps({"payload": HOSTILE, "payloadType": HOSTILE, "signatures": [{"sig": 1}]}),
        "[" * 100_000,  # nested past what json reads: refused, never a crash
        "",
    ],
)
def test_a_malformed_quorum_tag_reads_as_unreadable_never_breaks_the_page(browser, value):
    """Anyone who may write tags in an MLflow without the guard can write these keys."""
    model = make_model("hostile", tags={"quorum.protected": value})
    make_version(
        model,
        tags={
            "quorum.pinned": value,
            "quorum.attestation.Production": value,
            "quorum.attestation.Bogus": value,
        },
    )

    model_page = browser.get("/models/hostile/")
    version_page = browser.get("/models/hostile/versions/1/")

    assert (model_page.status_code, version_page.status_code) == (200, 200)
    page = text_of(model_page)
    assert "unreadable Quorum tag: the guard protects every stage and alias" in page
    assert text_of(version_page).count("unreadable Quorum tag") == 3
    for response in (model_page, version_page):
        assert "<img" not in text_of(response)
        assert "✓" not in text_of(response)


# --- cost ---------------------------------------------------------------------------------


def test_nan_and_infinite_metrics_from_mlflow_read_as_such_on_every_page(
    browser, settings, mlflow_client, unique_name
):
    settings.MLFLOW_TRACKING_URI = mlflow_client.tracking_uri  # history is read from MLflow here
    nan, inf = float("nan"), float("inf")
    register_with_metrics(mlflow_client, unique_name, {"accuracy": 0.9, "loss": 0.2})
    register_with_metrics(
        mlflow_client, unique_name, {"accuracy": nan, "loss": [0.5, inf], "margin": -inf}
    )
    sync_registry(model=unique_name, client=mlflow_client)

    version = browser.get(f"/models/{unique_name}/versions/2/")
    model = browser.get(f"/models/{unique_name}/")
    compare = browser.get(f"/models/{unique_name}/compare", {"a": "2", "b": "1"})

    assert {version.status_code, model.status_code, compare.status_code} == {200}
    page = text_of(version)
    assert '<th scope="row">accuracy</th><td class="num">NaN</td>' in page
    assert '<th scope="row">loss</th><td class="num">∞</td>' in page
    assert '<th scope="row">margin</th><td class="num">−∞</td>' in page
    [history] = chart_data(version)["charts"]
    assert history["series"][0]["y"] == [0.5, None]
    assert history["notes"] == ["v2: ∞ at step 1 (not drawn)"]
    assert '<td class="num">NaN</td>' in text_of(model)
    across = chart_data(model)["charts"][0]
    assert "accuracy: NaN for v2 (not drawn)" in across["notes"]
    accuracy = re.search(r'<th scope="row">accuracy .*?</tr>', text_of(compare), re.S).group(0)
    assert "NaN" in accuracy and "0.9000" in accuracy
    bars = chart_data(compare)["charts"][0]
    assert bars["series"][0]["y"][:2] == [None, None]
    assert bars["notes"] == ["v2: NaN for accuracy, ∞ for loss, −∞ for margin (not drawn)"]


def build_registry(models: int, versions: int):
    for m in range(models):
        model = make_model(f"bulk-{m:03d}")
        for v in range(1, versions + 1):
            stage = Stage.PRODUCTION if v == 1 else Stage.STAGING if v == 2 else Stage.NONE
            version = make_version(
                model,
                stage=stage,
                aliases=["champion"] if v == 3 else [],
                metrics={"accuracy": 0.5 + v / 100, "f1": 0.4 + v / 100, "loss": 1 / v},
                params={"alpha": v},
                tags={"v": str(v)},
            )
            if m == 0 and v <= 2:
                cache_all_history(version)
            if v == 2:
                make_content(version, {f"part-{n}.bin": bytes([n]) for n in range(versions)})


@pytest.mark.parametrize("size", [3, 30])
def test_page_query_counts_do_not_grow_with_the_registry(
    browser, size, django_assert_max_num_queries
):
    build_registry(models=size, versions=size)
    pages = [
        ("/", LIST_QUERIES),
        ("/models/bulk-000/", MODEL_QUERIES),
        ("/models/bulk-000/versions/2/", VERSION_QUERIES),
        ("/models/bulk-000/compare?a=2&b=1", COMPARE_QUERIES),
    ]
    for url, budget in pages:
        with django_assert_max_num_queries(budget):
            response = browser.get(url)
        assert response.status_code == 200, url
        assert "History unavailable" not in text_of(response)


def test_cached_history_is_read_without_writing(browser, fraud):
    # Everything is cached already: the version page reads the cache and writes nothing.
    before = MetricHistory.objects.count()
    browser.get("/models/fraud/versions/4/")
    assert MetricHistory.objects.count() == before
