"""Seeding a real `mlflow server`: trained models, synthetic ones, and the seed_registry command."""

from __future__ import annotations

import pickle
import uuid

import pytest
from django.core.management import CommandError, call_command

from quorum.localservices import free_port, start_mlflow_server
from registry.mlflow_client import RegistryClient
from registry.seed_models import METRICS, split
from registry.seeding import model_names, registry_has_models, seed_registry

LOWER_IS_BETTER = {"log_loss"}


def prefix() -> str:
    return f"seed-{uuid.uuid4().hex[:6]}-"


@pytest.fixture(scope="module")
def trained(mlflow_server):
    """Two trained models with four versions each (training takes a few seconds: done once)."""
    client = RegistryClient(mlflow_server.url)
    summary = seed_registry(client, models=2, versions=4, train=True, prefix=prefix())
    return client, summary


def versions_and_runs(client: RegistryClient, name: str):
    versions = sorted(client.list_versions(name), key=lambda v: v.version)
    return versions, client.get_runs(v.run_id for v in versions)


def test_trained_versions_have_params_final_metrics_and_per_epoch_history(trained):
    client, summary = trained
    assert summary.versions == 8 and summary.trained
    for name in summary.models:
        versions, runs = versions_and_runs(client, name)
        assert [v.version for v in versions] == [1, 2, 3, 4]
        for version in versions:
            run = runs[version.run_id]
            assert set(METRICS) <= set(run.metrics)
            for key in set(METRICS) - LOWER_IS_BETTER:
                assert 0.0 <= run.metrics[key] <= 1.0, (name, key, run.metrics[key])
            assert run.metrics["log_loss"] >= 0
            assert {"estimator", "dataset", "train_rows", "random_state"} <= set(run.params)
            history = client.get_metric_history(version.run_id, "accuracy")
            assert len(history) >= 10
            assert [p.step for p in history] == list(range(len(history)))
            assert history[-1].value == pytest.approx(run.metrics["accuracy"])


def test_versions_are_trained_differently_and_score_differently(trained):
    client, summary = trained
    for name in summary.models:
        versions, runs = versions_and_runs(client, name)
        settings = {
            tuple(sorted((k, v) for k, v in runs[ver.run_id].params.items() if k != "random_state"))
            for ver in versions
        }
        assert len(settings) == len(versions)
        losses = {round(runs[ver.run_id].metrics["log_loss"], 4) for ver in versions}
        assert len(losses) == len(versions), losses


def test_stages_champion_alias_tags_and_descriptions(trained):
    client, summary = trained
    first, second = summary.models
    assert first.endswith("tumor-classifier") and second.endswith("wine-cultivar-classifier")
    for name in summary.models:
        versions, _ = versions_and_runs(client, name)
        assert [v.stage for v in versions] == ["Archived", "Production", "Staging", "None"]
        for version in versions:
            assert "Held-out accuracy" in version.description
            assert version.tags["framework"] == "scikit-learn"
    models = {m.name: m for m in client.list_models() if m.name in summary.models}
    assert models[first].aliases == {"champion": 2}
    assert models[second].aliases == {}
    assert models[first].tags["dataset"] == "breast_cancer"
    assert models[second].tags["team"] and models[second].description


def test_logged_artifact_is_the_trained_model_behind_the_metrics(mlflow_server):
    client = RegistryClient(mlflow_server.url)
    summary = seed_registry(
        client, models=1, versions=2, train=True, artifacts=True, prefix=prefix()
    )
    versions, runs = versions_and_runs(client, summary.models[0])
    _, X_test, _, y_test = split("breast_cancer", 0)
    for version in versions:
        assert version.source.endswith("/model")
        # MLflow 3 keeps logged models under the artifact store; MLmodel names the run.
        (mlmodel,) = [
            path
            for path in mlflow_server.store_dir.rglob("MLmodel")
            if f"run_id: {version.run_id}" in path.read_text()
        ]
        with open(mlmodel.parent / "model.pkl", "rb") as file:
            estimator = pickle.load(file)  # noqa: S301 - the model this test just trained
        accuracy = (estimator.predict(X_test) == y_test).mean()
        assert accuracy == pytest.approx(runs[version.run_id].metrics["accuracy"], abs=1e-6)


def test_synthetic_registry_cycles_dataset_names_and_costs_few_calls_per_version(mlflow_client):
    calls_before = mlflow_client.calls
    summary = seed_registry(mlflow_client, models=5, versions=3, train=False, prefix=prefix())
    assert [name.split("-", 2)[2] for name in summary.models] == [
        "tumor-classifier",
        "wine-cultivar-classifier",
        "digit-recognizer",
        "iris-species-classifier",
        "tumor-classifier-2",
    ]
    # Four calls a version (run, metrics, end, version), a few a model (experiment, model,
    # stages, alias): what makes a 2,000-version benchmark registry affordable.
    assert summary.mlflow_calls <= 4 * summary.versions + 7 * len(summary.models)
    assert mlflow_client.calls - calls_before == summary.mlflow_calls
    for name in summary.models:
        versions, runs = versions_and_runs(mlflow_client, name)
        assert [v.stage for v in versions] == ["Production", "Staging", "None"]
        for version in versions:
            metrics = runs[version.run_id].metrics
            assert set(METRICS) <= set(metrics)
            history = mlflow_client.get_metric_history(version.run_id, "f1")
            assert len(history) >= 10 and history[-1].value == pytest.approx(metrics["f1"])


def test_model_names_number_the_datasets_once_they_run_out():
    assert model_names(9, "x-")[4:] == [
        "x-tumor-classifier-2",
        "x-wine-cultivar-classifier-2",
        "x-digit-recognizer-2",
        "x-iris-species-classifier-2",
        "x-tumor-classifier-3",
    ]


def test_registry_has_models_only_after_seeding(tmp_path):
    server = start_mlflow_server(tmp_path / "mlflow", port=free_port())
    try:
        client = RegistryClient(server.url)
        assert registry_has_models(client) is False
        seed_registry(client, models=1, versions=1, train=False)
        assert registry_has_models(client) is True
    finally:
        server.stop()


def test_seed_command_refuses_a_registry_with_models_unless_forced(mlflow_client, capsys):
    seed_registry(mlflow_client, models=1, versions=1, train=False, prefix=prefix())
    before = len(mlflow_client.list_models())

    with pytest.raises(CommandError, match="already has registered models.*--force"):
        call_command("seed_registry", "--synthetic")
    call_command("seed_registry", "--synthetic", "--if-empty")
    assert "already has models: not seeding" in capsys.readouterr().out
    assert len(mlflow_client.list_models()) == before

    name_prefix = prefix()
    call_command(
        "seed_registry", "--synthetic", "--force", "--models=2", "--versions=2",
        f"--prefix={name_prefix}",
    )  # fmt: skip
    assert "seeded 2 models, 4 versions (synthetic)" in capsys.readouterr().out
    names = {m.name for m in mlflow_client.list_models()}
    assert {f"{name_prefix}tumor-classifier", f"{name_prefix}wine-cultivar-classifier"} <= names


def test_seed_command_rejects_artifacts_without_training(mlflow_server):
    with pytest.raises(CommandError, match="--artifacts needs trained models"):
        call_command("seed_registry", "--synthetic", "--artifacts", "--force")


@pytest.mark.django_db
def test_demo_models_show_a_changed_signature_dependency_and_dataset(mlflow_server):
    from registry import evidence
    from registry.models import VersionEvidence
    from registry.sync import sync_registry

    client = RegistryClient(mlflow_server.url)
    summary = seed_registry(
        client, models=3, versions=2, train=True, artifacts=True, prefix=prefix()
    )
    sync_registry(full=True, client=client)
    evidence.fetch_missing(client=client, limit=10_000)

    def compared(name: str):
        read = {
            e.version.version: e
            for e in VersionEvidence.objects.filter(version__model__name=name).select_related(
                "version"
            )
        }
        assert read[1].problems == {} and read[2].problems == {}
        return evidence.compare(read[2], read[1])

    tumour, wine, digits = (compared(name) for name in summary.models)
    assert tumour.signature_breaking is True
    assert "breaking: column `mean radius` removed" in [c.text for c in tumour.signature_changes]
    assert (tumour.requirements_changed, tumour.dataset_changed) == (False, False)
    assert wine.requirement_changes == ["changed scipy ==1.14.1 → ==1.15.2"]
    assert (wine.signature_changed, wine.dataset_changed) == (False, False)
    assert digits.dataset_changed is True and "not comparable" in digits.dataset_warning
    assert (digits.signature_changed, digits.requirements_changed) == (False, False)


def test_seeding_with_artifacts_keeps_mlflow_from_deleting_an_environment_variable_mid_walk(
    monkeypatch,
):
    """Seeding threads log models while others make HTTP requests, which walk os.environ for
    proxy settings; MLflow's servability check deletes `_MLFLOW_IS_IN_SERVING_ENVIRONMENT` when it
    was absent, and a deletion mid-walk is a KeyError in the walking thread. seed_registry sets the
    variable first, and with it present MLflow only ever assigns it."""
    import os
    import sys
    import threading

    from mlflow.pyfunc.utils.environment import _simulate_serving_environment

    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")
    # Switch threads often, so that without the variable the race shows within the loop.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    errors: list[BaseException] = []
    done = threading.Event()

    def walk() -> None:
        while not done.is_set():
            try:
                dict(os.environ.items())
            except KeyError as error:
                errors.append(error)
                return

    walker = threading.Thread(target=walk)
    walker.start()
    try:
        for _ in range(20_000):
            with _simulate_serving_environment():
                pass
    finally:
        done.set()
        walker.join()
        sys.setswitchinterval(interval)
    assert errors == []
    assert os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] == "false"


def test_seeding_with_artifacts_sets_the_serving_variable_before_its_threads_start(
    mlflow_server, monkeypatch
):
    import os

    monkeypatch.delenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", raising=False)
    seed_registry(
        RegistryClient(mlflow_server.url),
        models=1,
        versions=1,
        train=True,
        artifacts=True,
        prefix=prefix(),
    )
    assert os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] == "false"
