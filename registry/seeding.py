"""Registries to look at: the demo's, the tests' and the benchmarks', built by one piece of code.

`seed_registry(client, models=4, versions=5)` registers `models` models with `versions` versions
each, every version backed by a finished run with params, final metrics and per-epoch metric
history, then moves some versions to Staging and Production (older ones to Archived) and points a
`champion` alias at the Production version of every other model.

- `train=True` trains real scikit-learn models on the datasets scikit-learn ships (breast cancer,
  wine, digits, iris), one hyperparameter setting per version, evaluated on the same held-out split,
  so some versions really are better than the one they would replace and others worse. Metric
  history is the held-out score after every epoch (`SGDClassifier.partial_fit`) or every boosting
  stage. `artifacts=True` also stores each fitted model in the run, as the demo does.
- `train=False` invents plausible numbers of the same shape in a few milliseconds per version: for
  tests and for benchmark registries of thousands of versions, where the cost that matters is
  MLflow's (four calls per version, models seeded in parallel because the server answers
  concurrent requests and each call is mostly waiting).

scikit-learn is imported only when training; MLflow only through `registry.mlflow_client`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from registry.mlflow_client import RegistryClient

from .seed_models import DATASETS, Dataset, SeedVersion, evidence_plan, synthesize, train_version


@dataclass
class SeedSummary:
    models: list[str]
    versions: int
    trained: bool
    artifacts: bool
    mlflow_calls: int
    seconds: float

    def __str__(self) -> str:
        kind = "trained" if self.trained else "synthetic"
        if self.artifacts:
            kind += ", with model artifacts"
        return (
            f"seeded {len(self.models)} models, {self.versions} versions ({kind}) "
            f"in {self.seconds:.1f} s, {self.mlflow_calls} MLflow calls"
        )


def registry_has_models(client: RegistryClient) -> bool:
    """Whether MLflow holds any registered model: the demo seeds an empty registry only."""
    return bool(client.list_models())


def model_names(models: int, prefix: str = "") -> list[str]:
    """Demo names, then the same names numbered once the datasets run out."""
    names = []
    for index in range(models):
        base = DATASETS[index % len(DATASETS)].model_name
        cycle = index // len(DATASETS)
        names.append(f"{prefix}{base}" if cycle == 0 else f"{prefix}{base}-{cycle + 1}")
    return names


def seed_registry(
    client: RegistryClient,
    *,
    models: int = 4,
    versions: int = 5,
    train: bool = True,
    artifacts: bool = False,
    prefix: str = "",
    seed: int = 0,
    workers: int = 8,
    progress: Callable[[str, int], None] | None = None,
) -> SeedSummary:
    """Registers `models` x `versions` versions in MLflow; see the module docstring.

    Raises `MlflowError` when a model of the same name exists already (choose another `prefix`).
    `progress(name, versions)` is called as each model is finished.
    """
    if models < 1 or versions < 1:
        raise ValueError("models and versions must both be at least 1")
    if artifacts and not train:
        raise ValueError("artifacts need trained models (train=True)")
    # MLflow prints a line per finished run and logs one per version created: thousands, in a
    # benchmark registry, that bury what the caller prints.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow.store.model_registry.abstract_store").setLevel(logging.WARNING)
    if artifacts:
        # Logging a model with an input example checks it is servable inside MLflow's
        # `_simulate_serving_environment`, which sets this variable and then deletes it again when
        # it was absent. A deletion while another seeding thread's HTTP request reads the proxy
        # settings (a walk over os.environ) raises KeyError in that thread. Present beforehand,
        # the variable is put back by assignment and never deleted; "false" is its default.
        os.environ.setdefault("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")
    started = time.perf_counter()
    names = model_names(models, prefix)
    lock = threading.Lock()
    calls = [0]

    def seed_one(index: int) -> None:
        # One client per thread: each keeps its own connection and call count.
        own = RegistryClient(client.tracking_uri)
        try:
            dataset = DATASETS[index % len(DATASETS)]
            rng = random.Random(f"{seed}/{index}")
            plans = [
                (train_version if train else synthesize)(dataset, number, rng, seed)
                for number in range(1, versions + 1)
            ]
            _register(
                own, names[index], dataset, plans, index=index, artifacts=artifacts, seed=seed
            )
        finally:
            with lock:
                calls[0] += own.calls
        if progress is not None:
            progress(names[index], versions)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, models))) as pool:
        futures = [pool.submit(seed_one, index) for index in range(models)]
        for future in futures:
            future.result()  # re-raises the first failure, after the other models finished
    client.calls += calls[0]
    return SeedSummary(
        models=names,
        versions=models * versions,
        trained=train,
        artifacts=artifacts,
        mlflow_calls=calls[0],
        seconds=time.perf_counter() - started,
    )


# -- registering -----------------------------------------------------------------------------


def stage_plan(versions: int) -> dict[int, str]:
    """The stage each version ends in: the newest is a fresh candidate, the one before it is in
    Staging, the one before that in Production, and everything older is Archived."""
    if versions <= 2:
        return {1: "Production"}
    plan = {versions - 2: "Production", versions - 1: "Staging"}
    plan.update({number: "Archived" for number in range(1, versions - 2)})
    return plan


def _register(
    client: RegistryClient,
    name: str,
    dataset: Dataset,
    plans: list[SeedVersion],
    *,
    index: int,
    artifacts: bool,
    seed: int = 0,
) -> None:
    experiment = client.experiment_id(name)
    classes = "binary" if dataset.loader == "breast_cancer" else "multiclass"
    client.create_model(
        name,
        description=dataset.description,
        tags={"team": dataset.team, "dataset": dataset.loader, "task": f"{classes}-classification"},
    )
    for number, plan in enumerate(plans, start=1):
        run_id = client.log_run(
            experiment,
            run_name=f"{name}-v{number}",
            params=plan.params,
            metrics=plan.metrics,
            history=plan.history,
            tags={"dataset": dataset.loader},
        )
        source = f"runs:/{run_id}/model"
        if artifacts and plan.estimator is not None:
            evidence = evidence_plan(dataset, index, newest=number == len(plans), seed=seed)
            source = client.log_sklearn_model(
                run_id,
                plan.estimator,
                input_example=evidence.input_example,
                extra_requirements=evidence.requirements,
            )
            for data_name, frame, context in evidence.datasets:
                client.log_dataset(run_id, name=data_name, frame=frame, context=context)
        client.create_version(
            name, source=source, run_id=run_id, description=plan.description, tags=plan.tags
        )
    stages = stage_plan(len(plans))
    for number, stage in sorted(stages.items()):
        client.transition_stage(name, number, stage)
    if index % 2 == 0:
        production = next(n for n, stage in stages.items() if stage == "Production")
        client.set_alias(name, "champion", production)


__all__ = ["DATASETS", "SeedSummary", "model_names", "registry_has_models", "seed_registry"]
