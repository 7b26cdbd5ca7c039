"""The registry pages with what MLflow may hold: hostile names and text escaped, Quorum's own tags
read apart from the users' (a malformed one shown as unreadable), NaN and infinities read as such,
and a cost that does not grow with the registry."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from registry.models import MetricHistory, Stage
from registry.sync import sync_registry
from tests.factories import HOSTILE, cache_all_history, make_content, make_model, make_version
from tests.mlflow_registry import register_with_metrics
from tests.pages import chart_data
from tests.pages import page_source as text_of

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


# The version comes with its model in one query. The promotion form reads the version's own and
# related requests and its signed proofs in one query; the policy panel the covered targets; the
# signed proofs panel the proofs' revocations; the evidence packet the baseline's evidence (the
# version's own comes with it).
VERSION_QUERIES = 11


COMPARE_QUERIES = 8


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
