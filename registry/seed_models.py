"""What each seeded version is (`registry.seeding` registers them): the datasets, one
hyperparameter setting per version, and either a model trained on scikit-learn's bundled data
(`train_version`, with its evidence: signature, pinned requirements, training and evaluation
data) or numbers of the same shape invented in milliseconds (`synthesize`).

scikit-learn, numpy and pandas are imported only inside the functions that train.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cache
from typing import Any

METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "log_loss")
TEST_SIZE = 0.25


@dataclass(frozen=True)
class Dataset:
    loader: str  # sklearn.datasets.load_<loader>
    model_name: str
    family: str  # "sgd" or "boosting"
    team: str
    description: str


DATASETS = (
    Dataset(
        "breast_cancer",
        "tumor-classifier",
        "boosting",
        "oncology",
        "Flags malignant breast tumours from 30 measurements of a fine-needle aspirate "
        "(Wisconsin diagnostic data). A missed malignancy costs far more than a false alarm: "
        "watch recall.",
    ),
    Dataset(
        "wine",
        "wine-cultivar-classifier",
        "sgd",
        "quality",
        "Tells the three cultivars of an Italian wine apart from 13 chemical measurements.",
    ),
    Dataset(
        "digits",
        "digit-recognizer",
        "sgd",
        "document-ai",
        "Reads handwritten digits from 8x8 grey-level scans of postal forms.",
    ),
    Dataset(
        "iris",
        "iris-species-classifier",
        "sgd",
        "botany",
        "Names the species of an iris from its sepal and petal sizes.",
    ),
)

# One setting per version, in this order, so neighbouring versions differ in ways a reviewer can
# see: under-trained, over-regularised, well tuned, noisy. Versions past the list draw from GRIDS.
SGD_SETTINGS: tuple[dict[str, Any], ...] = (
    {"loss": "log_loss", "alpha": 1e-2, "learning_rate": "constant", "eta0": 0.0005, "epochs": 15},
    {"loss": "log_loss", "alpha": 1e-4, "learning_rate": "optimal", "eta0": 0.01, "epochs": 20},
    {"loss": "log_loss", "alpha": 3e-1, "learning_rate": "optimal", "eta0": 0.01, "epochs": 15},
    {"loss": "modified_huber", "alpha": 1e-3, "learning_rate": "invscaling", "eta0": 0.05,
     "epochs": 20},
    {"loss": "log_loss", "alpha": 1e-3, "learning_rate": "adaptive", "eta0": 0.02, "epochs": 18},
    {"loss": "modified_huber", "alpha": 1e-5, "learning_rate": "constant", "eta0": 0.05,
     "epochs": 16},
)  # fmt: skip
BOOSTING_SETTINGS: tuple[dict[str, Any], ...] = (
    {"n_estimators": 15, "learning_rate": 0.05, "max_depth": 1, "subsample": 1.0},
    {"n_estimators": 30, "learning_rate": 0.1, "max_depth": 2, "subsample": 0.8},
    {"n_estimators": 20, "learning_rate": 0.5, "max_depth": 5, "subsample": 1.0},
    {"n_estimators": 30, "learning_rate": 0.1, "max_depth": 3, "subsample": 0.7},
    {"n_estimators": 20, "learning_rate": 0.2, "max_depth": 2, "subsample": 0.9},
    {"n_estimators": 30, "learning_rate": 0.02, "max_depth": 2, "subsample": 1.0},
)
GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "sgd": {
        "loss": ("log_loss", "modified_huber"),
        "alpha": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
        "learning_rate": ("optimal", "invscaling", "adaptive"),
        "eta0": (0.01, 0.02, 0.05),
        "epochs": (15, 18, 20),
    },
    "boosting": {
        "n_estimators": (15, 20, 25, 30),
        "learning_rate": (0.02, 0.05, 0.1, 0.2),
        "max_depth": (1, 2, 3),
        "subsample": (0.7, 0.8, 1.0),
    },
}


@dataclass
class SeedVersion:
    params: dict[str, Any]
    history: dict[str, list[float]]
    description: str
    estimator: Any = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return {key: values[-1] for key, values in self.history.items()}


# -- the evidence packet of seeded models ------------------------------------------------------

# Pinned by every seeded model, so a change of pin shows in the requirements diff.
SEEDED_PINS = ["scipy==1.14.1"]


@dataclass
class Evidence:
    input_example: Any
    requirements: list[str]
    datasets: list[tuple[str, Any, str]]  # (name, DataFrame, context)


def evidence_plan(dataset: Dataset, index: int, *, newest: bool, seed: int) -> Evidence:
    """What a trained version logs besides its model: a signature (from an input example with the
    dataset's feature names), pinned requirements and its training and evaluation data.

    The newest version of the first three demo models differs from the one it would replace in
    one way each, so a newcomer sees every case: the tumour classifier renames an input column
    (a breaking signature change), the wine classifier moves a dependency pin, and the digit
    recogniser is evaluated on rescanned digits (its metrics are not comparable).
    """
    import pandas as pd  # type: ignore[import-untyped]
    from sklearn import datasets

    X_train, X_test, _, _ = split(dataset.loader, seed)
    loaded = getattr(datasets, f"load_{dataset.loader}")()
    columns = [str(c) for c in getattr(loaded, "feature_names", range(X_train.shape[1]))]
    kind = index % len(DATASETS) if index < len(DATASETS) else None
    served = list(columns)  # the data keeps its columns; the model's input may rename one
    if newest and kind == 0:
        served[0] = served[0].replace(" ", "_") + "_mm"
    pins = list(SEEDED_PINS)
    if newest and kind == 1:
        pins = ["scipy==1.15.2"]
    evaluation, evaluated_on = X_test, f"{dataset.loader}-holdout"
    if newest and kind == 2:
        evaluation, evaluated_on = X_test[::-1] * 0.98, f"{dataset.loader}-holdout-rescanned"
    return Evidence(
        input_example=pd.DataFrame(X_test[:2], columns=served),
        requirements=pins,
        datasets=[
            (f"{dataset.loader}-train", pd.DataFrame(X_train, columns=columns), "training"),
            (evaluated_on, pd.DataFrame(evaluation, columns=columns), "evaluation"),
        ],
    )


# -- real models -----------------------------------------------------------------------------


def setting_for(family: str, number: int, rng: random.Random) -> dict[str, Any]:
    fixed = SGD_SETTINGS if family == "sgd" else BOOSTING_SETTINGS
    if number <= len(fixed):
        return dict(fixed[number - 1])
    return {key: rng.choice(choices) for key, choices in GRIDS[family].items()}


@cache
def split(loader: str, seed: int):
    """The dataset split once per seed, so every version of a model meets the same test rows."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    X, y = getattr(datasets, f"load_{loader}")(return_X_y=True)
    return train_test_split(X, y, test_size=TEST_SIZE, stratify=y, random_state=seed)


def scores(y_true, proba, classes) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics

    proba = np.nan_to_num(proba, nan=1.0 / len(classes))
    predicted = classes[proba.argmax(axis=1)]
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    # Probabilities from modified_huber can be exactly 0 or 1 and need not sum to one.
    clipped = np.clip(proba, 1e-7, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    try:
        if binary:
            roc_auc = metrics.roc_auc_score(y_true, proba[:, 1])
        else:
            roc_auc = metrics.roc_auc_score(y_true, clipped, multi_class="ovr", labels=classes)
    except ValueError:  # a constant score early in training
        roc_auc = 0.5
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        y_true, predicted, average=average, zero_division=0
    )
    return {
        "accuracy": float((predicted == y_true).mean()),
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "roc_auc": roc_auc,
        "log_loss": metrics.log_loss(y_true, clipped, labels=classes),
    }


def train_version(dataset: Dataset, number: int, rng: random.Random, seed: int) -> SeedVersion:
    import numpy as np

    X_train, X_test, y_train, y_test = split(dataset.loader, seed)
    classes = np.unique(y_train)
    setting = setting_for(dataset.family, number, rng)
    random_state = seed * 1000 + number
    history: dict[str, list[float]] = {key: [] for key in METRICS}

    def record(proba) -> None:
        for key, value in scores(y_test, proba, classes).items():
            history[key].append(round(float(value), 6))

    if dataset.family == "sgd":
        from sklearn.linear_model import SGDClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X_train)
        X_scaled, X_test_scaled = scaler.transform(X_train), scaler.transform(X_test)
        model_setting = {k: v for k, v in setting.items() if k != "epochs"}
        classifier = SGDClassifier(random_state=random_state, **model_setting)
        order = np.random.default_rng(random_state)
        for _ in range(setting["epochs"]):
            shuffled = order.permutation(len(X_scaled))
            classifier.partial_fit(X_scaled[shuffled], y_train[shuffled], classes=classes)
            record(classifier.predict_proba(X_test_scaled))
        estimator = make_pipeline(scaler, classifier)
        estimator_name = "SGDClassifier"
        kind = f"SGDClassifier ({setting['loss']}, alpha={setting['alpha']:g})"
        detail = f"{setting['epochs']} epochs, {setting['learning_rate']} learning rate"
    else:
        from sklearn.ensemble import GradientBoostingClassifier

        estimator = GradientBoostingClassifier(random_state=random_state, **setting)
        estimator.fit(X_train, y_train)
        estimator_name = "GradientBoostingClassifier"
        for proba in estimator.staged_predict_proba(X_test):
            record(proba)
        kind = f"Gradient boosting, {setting['n_estimators']} trees of depth {setting['max_depth']}"
        detail = f"learning rate {setting['learning_rate']}, subsample {setting['subsample']}"

    params = {
        **{key: str(value) for key, value in setting.items()},
        "estimator": estimator_name,
        "dataset": dataset.loader,
        "train_rows": str(len(X_train)),
        "test_rows": str(len(X_test)),
        "random_state": str(random_state),
    }
    version = SeedVersion(params=params, history=history, description="", estimator=estimator)
    final = version.metrics
    version.description = (
        f"{kind}, {detail}. Held-out accuracy {final['accuracy']:.3f}, F1 {final['f1']:.3f}."
    )
    version.tags = {"framework": "scikit-learn", "dataset": dataset.loader, "trained": "true"}
    return version


# -- synthetic numbers -----------------------------------------------------------------------


def synthesize(dataset: Dataset, number: int, rng: random.Random, seed: int) -> SeedVersion:
    """Numbers shaped like `train_version`'s: a quality that drifts between versions, curves that
    converge on it, log loss falling as accuracy rises."""
    setting = setting_for(dataset.family, number, rng)
    quality = min(0.99, max(0.55, 0.86 + 0.01 * number + rng.gauss(0, 0.03)))
    precision = min(0.995, max(0.5, quality + rng.gauss(0, 0.01)))
    recall = min(0.995, max(0.5, quality + rng.gauss(0, 0.015)))
    final = {
        "accuracy": quality,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "roc_auc": min(0.999, quality + 0.05 + rng.gauss(0, 0.01)),
        "log_loss": max(0.02, -math.log(quality) * 1.3 + rng.gauss(0, 0.02)),
    }
    steps = int(setting.get("epochs") or setting["n_estimators"])
    history: dict[str, list[float]] = {}
    for key, end in final.items():
        start, ceiling = (1.1, math.inf) if key == "log_loss" else (0.4, 1.0)
        curve = [
            min(ceiling, end + (start - end) * math.exp(-0.35 * step) + rng.gauss(0, 0.004))
            for step in range(steps - 1)
        ]
        history[key] = [round(value, 6) for value in [*curve, end]]
    params = {
        **{key: str(value) for key, value in setting.items()},
        "estimator": "SGDClassifier" if dataset.family == "sgd" else "GradientBoostingClassifier",
        "dataset": dataset.loader,
    }
    return SeedVersion(
        params=params,
        history=history,
        description=f"Synthetic version {number}: accuracy {quality:.3f}.",
        tags={"dataset": dataset.loader, "synthetic": "true"},
    )
