"""The evidence packet against a real `mlflow server`: what is read once per version, and how
two versions' evidence compares (signature, requirements, datasets, unreadable artifacts)."""

from __future__ import annotations

import pytest

from registry import evidence
from registry.mlflow_client import MlflowError, RegistryClient
from registry.models import EvidenceStatus, ModelVersion, VersionEvidence
from registry.sync import sync_registry
from tests.mlflow_registry import mlflow_of, register_sklearn_version

pytestmark = pytest.mark.django_db

BASE_COLUMNS = {"age": "int64", "income": "int64", "city": "object"}


def mirrored(client, name: str) -> dict[int, VersionEvidence]:
    """Syncs `name`, reads its versions' evidence as the worker does, keyed by version number."""
    sync_registry(model=name, client=client)
    evidence.fetch_missing(client=client)
    return {
        e.version.version: e
        for e in VersionEvidence.objects.filter(version__model__name=name).select_related("version")
    }


def test_evidence_holds_signature_requirements_flavors_size_and_datasets(
    mlflow_client, unique_name
):
    register_sklearn_version(
        mlflow_client,
        unique_name,
        columns=BASE_COLUMNS,
        extra_requirements=["requests==2.31.0"],
        datasets=[("customers-2025", "training"), ("holdout-2025", "evaluation")],
    )

    read = mirrored(mlflow_client, unique_name)[1]

    assert read.status == EvidenceStatus.READ and read.problems == {}
    inputs = {c["name"]: (c["type"], c["required"]) for c in read.signature["inputs"]}
    assert inputs == {"age": ("long", True), "income": ("long", True), "city": ("string", True)}
    assert "requests==2.31.0" in read.requirements
    assert any(r.startswith("scikit-learn==") for r in read.requirements)
    assert read.flavors == ["python_function", "sklearn"]
    assert read.python_version.startswith("3.")
    assert read.size_bytes and read.size_bytes > 0
    assert [(d["name"], d["context"]) for d in read.datasets] == [
        ("customers-2025", "training"),
        ("holdout-2025", "evaluation"),
    ]
    assert len(read.digest) == 64


def test_evidence_is_read_once_per_version(mlflow_client, unique_name):
    register_sklearn_version(mlflow_client, unique_name, columns=BASE_COLUMNS)
    mirrored(mlflow_client, unique_name)
    calls = mlflow_client.calls

    sync_registry(model=unique_name, client=mlflow_client)
    sync_calls = mlflow_client.calls - calls
    assert evidence.fetch_missing(client=mlflow_client) == 0
    assert mlflow_client.calls - calls == sync_calls  # no evidence read the second time
    assert evidence.waiting_count() == 0


def test_reading_in_threads_stores_the_same_evidence_with_the_same_calls(
    mlflow_client, unique_name
):
    """The first read of a registry in QUORUM_VERSION_READERS threads divides its time, not
    what MLflow is asked: every version once, the same calls as one reader makes."""
    for number in range(4):
        register_sklearn_version(
            mlflow_client,
            unique_name,
            columns={**BASE_COLUMNS, f"extra{number}": "float64"},
            datasets=[(f"holdout-{number}", "evaluation")],
        )
    sync_registry(model=unique_name, client=mlflow_client)

    def read_all(readers: int) -> tuple[int, dict[int, tuple]]:
        VersionEvidence.objects.all().delete()
        client = RegistryClient(mlflow_client.tracking_uri)
        assert evidence.fetch_missing(client=client, readers=readers) == 4
        kept = VersionEvidence.objects.select_related("version")
        return client.calls, {e.version.version: (e.digest, e.status, e.problems) for e in kept}

    one_calls, one = read_all(readers=1)
    many_calls, many = read_all(readers=3)
    assert many == one and sorted(one) == [1, 2, 3, 4]
    assert many_calls == one_calls


def test_mlflow_unreachable_stops_the_read_and_leaves_every_version_waiting(
    mlflow_client, unique_name, monkeypatch
):
    register_sklearn_version(mlflow_client, unique_name, columns=BASE_COLUMNS)
    sync_registry(model=unique_name, client=mlflow_client)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    with pytest.raises(MlflowError) as raised:
        evidence.fetch_missing(client=RegistryClient("http://127.0.0.1:9"), readers=3)

    assert raised.value.unreachable
    assert evidence.waiting_count() == 1 and not VersionEvidence.objects.exists()


def test_removed_column_and_changed_type_are_breaking(mlflow_client, unique_name):
    register_sklearn_version(mlflow_client, unique_name, columns=BASE_COLUMNS)
    register_sklearn_version(
        mlflow_client, unique_name, columns={"income": "float64", "city": "object"}
    )
    read = mirrored(mlflow_client, unique_name)

    comparison = evidence.compare(read[2], read[1])

    texts = [c.text for c in comparison.signature_changes]
    assert "breaking: column `age` removed" in texts
    assert "breaking: type of column `income` changed long → double" in texts
    assert comparison.signature_breaking is True
    assert comparison.requirements_changed is False
    assert comparison.unknown == []


def test_added_column_changes_the_signature_and_required_one_breaks(mlflow_client, unique_name):
    register_sklearn_version(mlflow_client, unique_name, columns=BASE_COLUMNS)
    register_sklearn_version(mlflow_client, unique_name, columns={**BASE_COLUMNS, "score": "int64"})
    read = mirrored(mlflow_client, unique_name)

    comparison = evidence.compare(read[2], read[1])

    assert [c.text for c in comparison.signature_changes] == [
        "breaking: added required column `score` (long)"
    ]
    # Made optional, the same column no longer breaks callers that do not send it.
    optional = dict(read[2].signature)
    optional["inputs"] = [
        {**c, "required": c["name"] != "score"} for c in read[2].signature["inputs"]
    ]
    read[2].signature = optional
    changes = evidence.compare(read[2], read[1]).signature_changes
    assert [c.text for c in changes] == ["added optional column `score` (long)"]
    assert not changes[0].breaking


def test_same_model_shows_no_change(mlflow_client, unique_name):
    for _ in range(2):
        register_sklearn_version(
            mlflow_client,
            unique_name,
            columns=BASE_COLUMNS,
            datasets=[("holdout", "evaluation")],
        )
    read = mirrored(mlflow_client, unique_name)

    comparison = evidence.compare(read[2], read[1])

    assert comparison.flags() == {
        "signature_breaking": False,
        "signature_changed": False,
        "requirements_changed": False,
        "dataset_changed": False,
    }
    assert comparison.dataset_warning == ""
    assert read[1].digest == read[2].digest


def test_requirements_diff_names_added_removed_and_changed_pins(mlflow_client, unique_name):
    register_sklearn_version(
        mlflow_client, unique_name, columns=BASE_COLUMNS, extra_requirements=["requests==2.31.0"]
    )
    register_sklearn_version(
        mlflow_client, unique_name, columns=BASE_COLUMNS, extra_requirements=["requests==2.32.3"]
    )
    register_sklearn_version(
        mlflow_client, unique_name, columns=BASE_COLUMNS, extra_requirements=["lightgbm==4.5.0"]
    )
    read = mirrored(mlflow_client, unique_name)

    assert evidence.compare(read[2], read[1]).requirement_changes == [
        "changed requests ==2.31.0 → ==2.32.3"
    ]
    comparison = evidence.compare(read[3], read[2])
    assert comparison.requirement_changes == ["added lightgbm==4.5.0", "removed requests==2.32.3"]
    assert comparison.requirements_changed is True
    assert comparison.signature_changed is False


def test_different_evaluation_datasets_are_not_comparable(mlflow_client, unique_name):
    register_sklearn_version(
        mlflow_client,
        unique_name,
        columns=BASE_COLUMNS,
        datasets=[("train", "training"), ("holdout-2024", "evaluation")],
    )
    register_sklearn_version(
        mlflow_client,
        unique_name,
        columns=BASE_COLUMNS,
        datasets=[("train", "training"), ("holdout-2025-q3", "evaluation")],
    )
    read = mirrored(mlflow_client, unique_name)

    comparison = evidence.compare(read[2], read[1])

    assert comparison.dataset_changed is True
    assert "not comparable" in comparison.dataset_warning


def test_one_run_without_evaluation_data_cannot_be_called_comparable(mlflow_client, unique_name):
    register_sklearn_version(
        mlflow_client, unique_name, columns=BASE_COLUMNS, datasets=[("holdout", "evaluation")]
    )
    register_sklearn_version(
        mlflow_client, unique_name, columns=BASE_COLUMNS, datasets=[("train", "training")]
    )
    read = mirrored(mlflow_client, unique_name)

    comparison = evidence.compare(read[2], read[1])

    assert comparison.dataset_changed is True
    assert "the candidate's did not" in comparison.dataset_warning


def test_logged_model_metrics_are_read_per_dataset(mlflow_client, unique_name):
    import mlflow
    import pandas as pd  # type: ignore[import-untyped]

    register_sklearn_version(mlflow_client, unique_name, columns=BASE_COLUMNS)
    run_id = mlflow_client.get_version(unique_name, 1).run_id
    mlflow_ = mlflow_of(mlflow_client)
    experiment = mlflow_client.experiment_id("evidence-tests")
    (logged,) = mlflow_.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}'"
    )
    # Registered from the LoggedModel, as `mlflow.register_model(model_info.model_uri)` does.
    mlflow_.create_model_version(
        unique_name, f"models:/{logged.model_id}", run_id=run_id, model_id=logged.model_id
    )
    mlflow.set_tracking_uri(mlflow_client.tracking_uri)
    holdout = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), name="holdout")
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric("accuracy", 0.91, model_id=logged.model_id, dataset=holdout)

    read = mirrored(mlflow_client, unique_name)

    assert read[2].dataset_metrics == {f"holdout ({holdout.digest})": {"accuracy": 0.91}}
    assert read[2].problems == {}
    assert read[1].dataset_metrics == {}  # registered from the run: run metrics only


def test_unreadable_artifacts_are_recorded_with_the_reason_never_as_no_change(
    mlflow_client, unique_name
):
    register_sklearn_version(mlflow_client, unique_name, columns=BASE_COLUMNS)
    # A version whose source holds no model: MLflow accepts it, its MLmodel cannot be read.
    run_id = mlflow_client.log_run(
        mlflow_client.experiment_id("evidence-tests"), run_name="empty", params={}, metrics={}
    )
    mlflow_client.create_version(unique_name, source=f"runs:/{run_id}/nothing", run_id=run_id)
    read = mirrored(mlflow_client, unique_name)

    broken = read[2]
    assert broken.status == EvidenceStatus.UNREADABLE
    assert broken.problems["model"].startswith("the MLmodel file could not be read")
    comparison = evidence.compare(broken, read[1])
    assert comparison.flags() == {
        "signature_breaking": None,
        "signature_changed": None,
        "requirements_changed": None,
        "dataset_changed": False,
    }
    assert any("the candidate's model" in why for why in comparison.unknown)
    # Nothing read from its MLmodel is compared: no "flavors sklearn → none".
    assert comparison.environment_changes == [] and comparison.signature_changes == []
    # The version is not fetched again and again: its reason stays until someone looks.
    assert ModelVersion.objects.filter(model__name=unique_name, evidence__isnull=True).count() == 0


def test_evidence_not_read_yet_is_unknown():
    comparison = evidence.compare(None, None)

    assert all(value is None for value in comparison.flags().values())
    assert comparison.unknown == ["the candidate's evidence has not been read from MLflow yet"]


def test_signature_rows_put_changed_added_and_removed_columns_first_with_what_they_were():
    old = {
        "inputs": [
            {"name": "age", "type": "long", "required": True},
            {"name": "city", "type": "string", "required": True},
            {"name": "income", "type": "long", "required": True},
        ],
        "outputs": [{"name": None, "type": "long", "required": True}],
    }
    new = {
        "inputs": [
            {"name": "city", "type": "string", "required": True},
            {"name": "income", "type": "double", "required": False},
            {"name": "region", "type": "string", "required": True},
        ],
        "outputs": [{"name": None, "type": "long", "required": True}],
    }

    rows = evidence.signature_rows(old, new)

    assert [(r.name, r.status) for r in rows] == [
        ("income", "changed"),
        ("region", "added"),
        ("age", "removed"),
        ("city", "same"),
        (None, "same"),
    ]
    assert rows[0].was == "was type long, required" and rows[0].type == "double"
    assert [r.changed for r in rows] == [True, True, True, False, False]


def test_signature_rows_without_a_holders_signature_compare_nothing():
    new = {"inputs": [{"name": "x", "type": "double", "required": True}]}
    rows = evidence.signature_rows(None, new)
    assert [(r.name, r.status, r.changed) for r in rows] == [("x", None, False)]
    assert evidence.signature_rows(None, None) == []
