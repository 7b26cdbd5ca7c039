"""Models written into a real MLflow server, and read back from it, as MLflow's users would: through
Quorum's RegistryClient (`register_in_mlflow`, `register_fraud_model`, `register_sklearn_version`)
or MLflow's own client (`mlflow_of`); hostile registries that MLflow accepts and Quorum's mirror
must survive (`register_with_metrics`, `register_unmirrorable`); and a version's files where a
deploy step or an attacker reaches them (`download`, `artifact_url`).

Plain functions only, as in tests/factories.py: tests of the sync, of history, of content digests
and of transitions use them with the `mlflow_client` fixture.
"""

from __future__ import annotations

import math
from pathlib import Path

# What each poisoned version of `register_unmirrorable` carries, by version number.
UNMIRRORABLE = {
    2: "a run id with both quote characters (mirrored without its run)",
    3: "a run id longer than any MLflow makes",
    4: "a tag value holding a NUL character",
    5: "a description holding a NUL character",
}


def register_in_mlflow(client, name: str, versions: int = 3) -> list[str]:
    """A registered model with `versions` versions, each backed by a run (params alpha and
    penalty; accuracy, f1 and a loss history that improve with the number), through Quorum's
    RegistryClient `client`; returns the run ids. Each version's model directory holds two small
    files (`MLmodel`, `weights/model.txt`), so it has a content digest."""
    experiment = client.experiment_id("sync-tests")
    client.create_model(name, description="fraud scoring", tags={"team": "risk"})
    run_ids = []
    for number in range(1, versions + 1):
        run_id = client.log_run(
            experiment,
            run_name=f"{name}-{number}",
            params={"alpha": 0.1 * number, "penalty": "l2"},
            metrics={"accuracy": 0.8 + number / 100, "f1": 0.7 + number / 100},
            history={"loss": [1.0, 0.5, 0.3 - number / 100]},
        )
        # Model files, so the version has content to digest (nothing is approved without it).
        client.log_text(run_id, f"flavors: {{}}\nversion: {number}\n", "model/MLmodel")
        client.log_text(run_id, f"weights of {name} v{number}\n", "model/weights/model.txt")
        client.create_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
        run_ids.append(run_id)
    return run_ids


def log_model_files(client, run_id: str, weights: str) -> None:
    """Two small model files under the run's `model/` (an MLmodel and weights reading
    `weights`), so a version registered from `runs:/<run>/model` has content to digest."""
    mlflow = mlflow_of(client)
    mlflow.log_text(run_id, "flavors: {}\n", "model/MLmodel")
    mlflow.log_text(run_id, weights, "model/model.pkl")


def register_fraud_model(client, name: str) -> None:
    """Five versions with per-epoch history, different settings, stages, an alias and tags: v2
    Archived, v3 in Production and @champion, v4 in Staging and @challenger, v5 the candidate."""
    experiment = client.experiment_id("browser-tests")
    client.create_model(
        name,
        description="Scores card payments for fraud.\nRetrained weekly.",
        tags={"team": "risk"},
    )
    for number in range(1, 6):
        rate = 0.15 + number * 0.05
        epochs = 25
        accuracy = [0.95 - 0.4 * math.exp(-rate * e) - 0.01 * (number == 5) for e in range(epochs)]
        loss = [0.22 + 0.6 * math.exp(-rate * e) - 0.01 * number for e in range(epochs)]
        run_id = client.log_run(
            experiment,
            run_name=f"{name}-{number}",
            params={
                "learning_rate": round(rate, 2),
                "epochs": epochs,
                "penalty": "l2" if number < 4 else "elasticnet",
            },
            metrics={
                "accuracy": accuracy[-1],
                "log_loss": loss[-1],
                "f1": 0.80 + number * 0.012,
                "precision": 0.84 - number * 0.004,
                "recall": 0.76 + number * 0.02,
            },
            history={"accuracy": accuracy, "log_loss": loss},
        )
        # Model files, so the version has content to digest (nothing is approved without it).
        client.log_text(run_id, f"flavors: {{}}\nversion: {number}\n", "model/MLmodel")
        client.log_text(run_id, f"weights of {name} v{number}\n", "model/weights/model.txt")
        client.create_version(
            name,
            source=f"runs:/{run_id}/model",
            run_id=run_id,
            description=f"SGD classifier, learning rate {rate:.2f}.",
            tags={
                "dataset": f"payments-2026-{number:02d}",
                "validated": "yes" if number < 5 else "no",
            },
        )
    client.transition_stage(name, 2, "Archived")
    client.transition_stage(name, 3, "Production")
    client.transition_stage(name, 4, "Staging")
    client.set_alias(name, "champion", 3)
    client.set_alias(name, "challenger", 4)


def mlflow_of(client):
    """MLflow's own client for the server `client` (a RegistryClient) talks to: what a user of
    that MLflow would write with."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=client.tracking_uri, registry_uri=client.tracking_uri)


def register_with_metrics(
    client, name: str, metrics: dict[str, float | list[float]], *, versions: int = 1
) -> list[str]:
    """A registered model whose versions' runs log `metrics` with `MlflowClient.log_metric`, one
    call per value (a list is one value per step), NaN and infinities as they are; returns the
    run ids."""
    mlflow = mlflow_of(client)
    experiment = client.experiment_id("hostile-registry-tests")
    if client.get_model(name) is None:
        mlflow.create_registered_model(name)
    run_ids = []
    for _ in range(versions):
        run_id = mlflow.create_run(experiment).info.run_id
        for key, values in metrics.items():
            for step, value in enumerate(values if isinstance(values, list) else [values]):
                mlflow.log_metric(run_id, key, value, step=step)
        mlflow.set_terminated(run_id)
        mlflow.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
        run_ids.append(run_id)
    return run_ids


def register_unmirrorable(client, name: str) -> None:
    """A model whose v1 is healthy (accuracy 0.9) and whose v2-v5 MLflow accepts but Quorum's
    mirror cannot hold, as `UNMIRRORABLE` says."""
    mlflow = mlflow_of(client)
    register_with_metrics(client, name, {"accuracy": 0.9})
    source = "s3://models/poisoned"
    mlflow.create_model_version(name, source, run_id="a'b\"c")
    mlflow.create_model_version(name, source, run_id="f" * 100)
    mlflow.create_model_version(name, source, tags={"note": "nul\x00here"})
    mlflow.create_model_version(name, source, description="nul\x00here")


def register_sklearn_version(
    client,
    name: str,
    *,
    columns: dict[str, str],
    extra_requirements: list[str] | None = None,
    datasets: list[tuple[str, str]] = (),  # type: ignore[assignment]
    signature: bool = True,
) -> int:
    """Registers a fitted scikit-learn model whose input columns have the dtypes `columns`
    ("int64", "float64", "object"), with pip pins added to the defaults and `datasets` logged as
    the run's inputs ((name, context): the same name gives the same digest); returns its version."""
    import pandas as pd  # type: ignore[import-untyped]
    from sklearn.dummy import DummyClassifier

    values = {"object": ["a", "b", "c", "d"]}
    frame = pd.DataFrame(
        {
            col: pd.Series(values.get(dtype, [1, 2, 3, 4]), dtype=dtype)
            for col, dtype in columns.items()
        }
    )
    estimator = DummyClassifier().fit(frame.select_dtypes("number"), [0, 1, 0, 1])
    experiment = client.experiment_id("evidence-tests")
    run_id = client.log_run(experiment, run_name=name, params={}, metrics={"accuracy": 0.9})
    source = client.log_sklearn_model(
        run_id,
        estimator,
        input_example=frame.head(2) if signature else None,
        extra_requirements=extra_requirements,
    )
    for dataset, context in datasets:
        data = pd.DataFrame({"x": [len(dataset), 2, 3]})
        client.log_dataset(run_id, name=dataset, frame=data, context=context)
    if client.get_model(name) is None:
        client.create_model(name)
    return client.create_version(name, source=source, run_id=run_id)


def mlflow_stages(client, name: str) -> dict[int, str]:
    """Each version of model `name` and its stage, as MLflow says now."""
    return {v.version: v.stage for v in client.list_versions(name)}


def download(client, location: str, into) -> Path:
    """The version's files as a deploy step would fetch them (MLflow's own download); returns
    the directory that holds them."""
    from mlflow.artifacts import download_artifacts

    return Path(
        download_artifacts(
            artifact_uri=location, dst_path=str(into), tracking_uri=client.tracking_uri
        )
    )


def artifact_url(client, location: str, path: str) -> str:
    """The proxied artifact address of `path` under an `mlflow-artifacts:` location: where an
    attacker with the server's address PUTs a file."""
    root = location.removeprefix("mlflow-artifacts:").lstrip("/")
    return f"{client.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}"
