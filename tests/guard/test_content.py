"""The guard's second rule inside a real `mlflow server --app-name quorum-guard` (token mode): the
content, run and metrics of a held version stay still, and so does Quorum's own webhook; an
unheld version's stay free, and Quorum's identity passes everywhere.

Token mode only: over basic-auth, MLflow's own permissions on experiments decide first who may
write artifacts at all, which would hide what the guard decides."""

from __future__ import annotations

import pytest
import requests
from mlflow_quorum_guard.config import GuardConfig, GuardConfigError

from registry.sync import sync_registry
from tests.conftest import GUARD_TOKEN
from tests.mlflow_registry import mlflow_of

pytestmark = pytest.mark.django_db

WEIGHTS = b"approved weights"
SWAPPED = b"cos\nsystem\n(S'echo owned'\ntR."


def artifact_url(guarded, location: str, path: str = "") -> str:
    """Where the server's artifact route serves `path` under an `mlflow-artifacts:` location."""
    root = location.removeprefix("mlflow-artifacts:").strip("/")
    return f"{guarded.url}/api/2.0/mlflow-artifacts/artifacts/{root}" + (f"/{path}" if path else "")


def put(guarded, who: str, location: str, path: str, data: bytes = SWAPPED):
    url = artifact_url(guarded, location, path)
    return requests.put(url, data=data, timeout=30, **guarded.credentials(who))


def fetch(guarded, location: str, path: str) -> bytes:
    url = artifact_url(guarded, location, path)
    response = requests.get(url, timeout=30, **guarded.credentials("quorum"))
    response.raise_for_status()
    return response.content


def call(guarded, who: str, method: str, path: str, body: dict | None = None):
    url = f"{guarded.url}/api/2.0/mlflow/{path}"
    return requests.request(method, url, json=body, timeout=30, **guarded.credentials(who))


def assert_refused(response, *words: str) -> str:
    assert response.status_code == 403, response.text
    error = response.json()
    assert error["error_code"] == "PERMISSION_DENIED"
    assert "Quorum" in error["message"]
    for word in words:
        assert word in error["message"]
    return error["message"]


class Held:
    """A model with v1 in Production and v2 unheld, each from its own run whose artifacts hold
    model/model.pkl, in an experiment of the test's own."""

    def __init__(self, guarded, client, name: str):
        self.name, self.client = name, client
        self.experiment = client.experiment_id(f"guard-content-{name}")
        client.create_model(name)
        self.runs, self.locations = [], []
        for number in (1, 2):
            run_id = client.log_run(
                self.experiment,
                run_name=f"{name}-{number}",
                params={"alpha": number},
                metrics={"accuracy": 0.9},
            )
            location = mlflow_of(client).get_run(run_id).info.artifact_uri
            assert put(guarded, "quorum", location, "model/model.pkl", WEIGHTS).status_code == 200
            client.create_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
            self.runs.append(run_id)
            self.locations.append(location)
        client.transition_stage(name, 1, "Production")
        # The sync ends by probing the guard and tagging the model from the policies.
        sync_registry(model=name, client=client)


@pytest.fixture
def held(token_guard, as_quorum, unique_name, policies) -> Held:
    return Held(token_guard, as_quorum(token_guard), unique_name)


def test_swapping_the_model_file_of_a_production_version_is_refused(token_guard, held):
    production, unheld = held.locations

    message = assert_refused(
        put(token_guard, "alice", production, "model/model.pkl"), held.name, "Production"
    )
    assert "version 1" in message
    assert_refused(put(token_guard, "alice", production, "model/extra.pkl"), held.name)
    delete_file = artifact_url(token_guard, production, "model/model.pkl")
    assert_refused(requests.delete(delete_file, timeout=30), held.name)
    # Deleting a directory that holds the version's files is deleting them.
    assert_refused(requests.delete(artifact_url(token_guard, production), timeout=30), held.name)
    assert fetch(token_guard, production, "model/model.pkl") == WEIGHTS

    # A version nothing holds keeps MLflow's ordinary rules.
    assert put(token_guard, "alice", unheld, "model/model.pkl").status_code == 200
    assert fetch(token_guard, unheld, "model/model.pkl") == SWAPPED
    # Quorum itself passes.
    assert put(token_guard, "quorum", production, "model/notes.txt", b"ok").status_code == 200


def test_a_pinned_version_from_a_logged_model_is_kept_still(token_guard, held, as_quorum):
    mlflow_ = mlflow_of(held.client)
    logged = mlflow_.create_logged_model(held.experiment, source_run_id=held.runs[1])
    location = logged.artifact_location
    assert put(token_guard, "quorum", location, "model.pkl", WEIGHTS).status_code == 200
    mlflow_.create_model_version(
        held.name, f"models:/{logged.model_id}", run_id=held.runs[1], model_id=logged.model_id
    )
    assert put(token_guard, "alice", location, "MLmodel", b"unheld").status_code == 200

    # Quorum pins it when a request opens (tests/guard/test_pins.py): from then on it is held.
    held.client.set_version_tag(held.name, 3, "quorum.pinned", '{"requests": [1]}')

    assert_refused(put(token_guard, "alice", location, "model.pkl"), "open request", held.name)
    assert_refused(call(token_guard, "alice", "DELETE", f"logged-models/{logged.model_id}"))
    assert fetch(token_guard, location, "model.pkl") == WEIGHTS
    # Nobody else may lift the pin.
    body = {"name": held.name, "version": "3", "key": "quorum.pinned"}
    response = call(token_guard, "alice", "DELETE", "model-versions/delete-tag", body)
    assert response.status_code == 403
    assert put(token_guard, "quorum", location, "model.pkl", WEIGHTS).status_code == 200


def test_logging_metrics_to_the_run_behind_production_is_refused(token_guard, held):
    production, unheld = held.runs
    metric = {"key": "accuracy", "value": 0.99, "timestamp": 1, "step": 0}
    batch = {"metrics": [metric], "params": [], "tags": []}
    param = {"key": "threshold", "value": "0.1"}

    assert_refused(call(token_guard, "alice", "POST", "runs/log-metric", {"run_id": production, **metric}), held.name)  # fmt: skip  # noqa: E501
    assert_refused(call(token_guard, "alice", "POST", "runs/log-batch", {"run_id": production, **batch}), held.name)  # fmt: skip  # noqa: E501
    assert_refused(call(token_guard, "alice", "POST", "runs/log-parameter", {"run_id": production, **param}))  # fmt: skip  # noqa: E501
    metrics = mlflow_of(held.client).get_run(production).data.metrics
    assert metrics["accuracy"] == 0.9

    # Run tags are no gate's input; an unheld version's run is free; Quorum passes.
    tag = {"run_id": production, "key": "note", "value": "looked at"}
    assert call(token_guard, "alice", "POST", "runs/set-tag", tag).status_code == 200
    body = {"run_id": unheld, **metric}
    assert call(token_guard, "alice", "POST", "runs/log-metric", body).status_code == 200
    body = {"run_id": production, **metric}
    assert call(token_guard, "quorum", "POST", "runs/log-metric", body).status_code == 200


def test_with_run_data_unprotected_live_metrics_may_be_logged(
    guarded_mlflow_servers, as_quorum, unique_name, policies
):
    guarded = guarded_mlflow_servers("token", QUORUM_GUARD_PROTECT_RUN_DATA="false")
    held = Held(guarded, as_quorum(guarded), unique_name)
    metric = {"run_id": held.runs[0], "key": "live_loss", "value": 0.3, "timestamp": 1}

    assert call(guarded, "alice", "POST", "runs/log-metric", metric).status_code == 200
    # The setting is about metrics and params only: the run and its files stay still.
    assert_refused(call(guarded, "alice", "POST", "runs/delete", {"run_id": held.runs[0]}))
    assert_refused(put(guarded, "alice", held.locations[0], "model/model.pkl"), held.name)


def test_deleting_the_run_or_experiment_behind_production_is_refused(token_guard, held):
    production, unheld = held.runs

    assert_refused(call(token_guard, "alice", "POST", "runs/delete", {"run_id": production}), held.name)  # fmt: skip  # noqa: E501
    assert_refused(call(token_guard, "alice", "POST", "runs/restore", {"run_id": production}))
    body = {"experiment_id": held.experiment}
    assert_refused(call(token_guard, "alice", "POST", "experiments/delete", body), held.name)
    assert mlflow_of(held.client).get_run(production).info.lifecycle_stage == "active"

    assert call(token_guard, "alice", "POST", "runs/delete", {"run_id": unheld}).status_code == 200
    for route in ("runs/delete", "runs/restore"):
        body = {"run_id": production}
        assert call(token_guard, "quorum", "POST", route, body).status_code == 200


def test_quorums_webhook_cannot_be_disabled_or_deleted_by_anyone_else(token_guard, as_quorum):
    mlflow_ = mlflow_of(as_quorum(token_guard))
    events = ["model_version_alias.created"]
    ours = mlflow_.create_webhook(
        "quorum", "http://127.0.0.1:9/webhooks/mlflow", events, secret="s" * 32
    )
    other = mlflow_.create_webhook("ci-notify", "http://127.0.0.1:9/ci", events)
    try:
        path = f"webhooks/{ours.webhook_id}"
        assert_refused(call(token_guard, "alice", "PATCH", path, {"status": "DISABLED"}), "quorum")
        assert_refused(call(token_guard, "alice", "DELETE", path))
        assert str(mlflow_.get_webhook(ours.webhook_id).status) == "ACTIVE"

        body = {"status": "DISABLED"}
        assert call(token_guard, "alice", "PATCH", f"webhooks/{other.webhook_id}", body).status_code == 200  # fmt: skip  # noqa: E501
        assert call(token_guard, "quorum", "PATCH", path, body).status_code == 200
        assert call(token_guard, "quorum", "DELETE", path).status_code == 200
    finally:
        for webhook in (ours, other):
            call(token_guard, "quorum", "DELETE", f"webhooks/{webhook.webhook_id}")


def test_run_data_setting_takes_only_true_or_false():
    base = {"QUORUM_GUARD_SERVICE_TOKEN": GUARD_TOKEN}
    assert GuardConfig.from_env(base).protect_run_data is True
    env = {**base, "QUORUM_GUARD_PROTECT_RUN_DATA": "FALSE"}
    assert GuardConfig.from_env(env).protect_run_data is False
    with pytest.raises(GuardConfigError, match="QUORUM_GUARD_PROTECT_RUN_DATA='off'"):
        GuardConfig.from_env({**base, "QUORUM_GUARD_PROTECT_RUN_DATA": "off"})
    assert GuardConfig.from_env(base).webhook_name == "quorum"
