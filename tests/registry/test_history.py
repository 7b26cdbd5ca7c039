"""Metric history fetched lazily from the real MLflow server, cached, and survived without it."""

from __future__ import annotations

import json
import math
import re

import pytest

from quorum.localservices import free_port
from registry.charts import history_chart
from registry.history import metric_histories, version_histories
from registry.mlflow_client import RegistryClient
from registry.models import MetricHistory
from tests.factories import make_history, make_model, make_user, make_version
from tests.mlflow_registry import register_with_metrics

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client):
    client.force_login(make_user("historian"))
    return client


@pytest.fixture
def logged_version(mlflow_client, unique_name):
    """A mirrored version whose run in MLflow has per-step history for two metrics."""
    experiment = mlflow_client.experiment_id("history-tests")
    run_id = mlflow_client.log_run(
        experiment,
        run_name=unique_name,
        params={"epochs": 4},
        metrics={"accuracy": 0.91, "log_loss": 0.25, "f1": 0.88},
        history={"accuracy": [0.6, 0.8, 0.9, 0.91], "log_loss": [0.9, 0.5, math.nan, 0.25]},
    )
    model = make_model(unique_name)
    return make_version(
        model,
        run_id=run_id,
        experiment_id=experiment,
        metrics={"accuracy": 0.91, "log_loss": 0.25, "f1": 0.88},
    )


@pytest.fixture
def unreachable_mlflow(settings, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{free_port()}"


def charts_of(response) -> list[dict]:
    match = re.search(
        r'<script id="chart-data" type="application/json">(.*?)</script>',
        response.content.decode(),
    )
    assert match is not None, "the page embeds no chart data"
    return json.loads(match.group(1))["charts"]


def test_version_page_fetches_history_from_mlflow_and_caches_it(browser, logged_version):
    url = f"/models/{logged_version.model.name}/versions/{logged_version.version}/"
    response = browser.get(url)
    assert response.status_code == 200
    assert "History unavailable" not in response.content.decode()

    cached = {
        row.key: row.points for row in MetricHistory.objects.filter(run_id=logged_version.run_id)
    }
    assert set(cached) == {"accuracy", "log_loss", "f1"}
    assert [value for _, value, _ in cached["accuracy"]] == [0.6, 0.8, 0.9, 0.91]
    # NaN kept as such, in the mirror's spelling
    assert [value for _, value, _ in cached["log_loss"]] == [0.9, 0.5, "NaN", 0.25]
    assert [step for step, _, _ in cached["accuracy"]] == [0, 1, 2, 3]

    # f1 was logged once: a value, not a curve, so only two charts.
    charts = charts_of(response)
    assert [chart["title"] for chart in charts] == ["accuracy", "log_loss"]
    assert charts[0]["series"][0]["y"] == [0.6, 0.8, 0.9, 0.91]
    # Plotly draws a gap where the value is not a number; the note under the chart says why.
    assert charts[1]["series"][0]["y"] == [0.9, 0.5, None, 0.25]
    assert charts[1]["notes"] == [f"v{logged_version.version}: NaN at step 2 (not drawn)"]


def test_cached_history_is_served_without_mlflow(browser, logged_version, settings, monkeypatch):
    url = f"/models/{logged_version.model.name}/versions/{logged_version.version}/"
    browser.get(url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{free_port()}"
    response = browser.get(url)
    assert "History unavailable" not in response.content.decode()
    assert [chart["title"] for chart in charts_of(response)] == ["accuracy", "log_loss"]


def test_history_costs_one_mlflow_call_per_metric_once(mlflow_server, logged_version):
    mlflow_client = RegistryClient(mlflow_server.url)
    first = metric_histories(
        [(logged_version.run_id, "accuracy"), (logged_version.run_id, "log_loss")],
        client=mlflow_client,
    )
    assert mlflow_client.calls == 2
    calls = mlflow_client.calls
    again = version_histories([logged_version], keys=["accuracy", "log_loss"], client=mlflow_client)
    assert mlflow_client.calls == calls  # all cached now
    assert first.fetched == 2 and again.fetched == 0
    assert again.curve(logged_version.run_id, "accuracy") == first.curve(
        logged_version.run_id, "accuracy"
    )


def test_unreachable_mlflow_leaves_a_note_not_a_500(browser, unreachable_mlflow):
    model = make_model("offline")
    make_version(model, run_id="run-never-fetched", metrics={"accuracy": 0.9, "loss": 0.1})
    make_version(model, run_id="another-run", metrics={"accuracy": 0.8, "loss": 0.2})
    for url in ("/models/offline/versions/1/", "/models/offline/compare?a=2&b=1"):
        response = browser.get(url)
        assert response.status_code == 200, url
        assert "History unavailable: MLflow did not answer." in response.content.decode()
    assert not MetricHistory.objects.exists()


def test_an_outage_costs_one_failed_call_and_keeps_what_was_cached(unreachable_mlflow, settings):
    model = make_model("half-cached")
    version = make_version(model, metrics={"accuracy": 0.9, "f1": 0.8, "loss": 0.1})
    make_history(version, "accuracy", [0.5, 0.9])
    client = RegistryClient(settings.MLFLOW_TRACKING_URI)

    result = version_histories([version], client=client)

    assert result.unavailable
    assert client.calls == 1  # f1 failed; loss was not even tried
    assert result.curve(version.run_id, "accuracy") == [[0, 0.5], [1, 0.9]]
    assert result.curve(version.run_id, "f1") == []


def test_infinite_history_points_read_back_as_infinities(mlflow_server, unique_name):
    client = RegistryClient(mlflow_server.url)
    (run_id,) = register_with_metrics(
        client, unique_name, {"loss": [1.0, float("inf"), float("-inf"), float("nan"), 0.5]}
    )

    histories = metric_histories([(run_id, "loss")], client=client)

    assert histories.curve(run_id, "loss") == [
        [0, 1.0],
        [1, "Infinity"],
        [2, "-Infinity"],
        [3, "NaN"],
        [4, 0.5],
    ]
    chart = history_chart("loss", [("v1", histories.curve(run_id, "loss"))], target="c")
    assert chart["series"][0]["y"] == [1.0, None, None, None, 0.5]
    assert chart["notes"] == ["v1: ∞ at step 1, −∞ at step 2, NaN at step 3 (not drawn)"]
