"""Small factories that write mirror rows directly, for tests of pages and comparisons.

The sync is the only writer in production; these stand in for what it would have written, so view
tests do not need an MLflow server. Tests of the sync and of history use the real server.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from registry.models import MetricHistory, ModelVersion, RegisteredModel, Stage

_counter = itertools.count(1)


def now_ms() -> int:
    return int(time.time() * 1000)


def make_user(username: str = "reviewer", *, password: str = "a-long-test-password", **fields):  # noqa: S107
    user = get_user_model().objects.create_user(username=username, password=password, **fields)
    # The plaintext, for tests that sign in through the login form.
    user.raw_password = password  # type: ignore[attr-defined]
    return user


def make_model(
    name: str | None = None,
    *,
    description: str = "",
    tags: dict[str, str] | None = None,
    aliases: dict[str, int] | None = None,
    deleted: bool = False,
    **fields: Any,
) -> RegisteredModel:
    stamp = now_ms()
    return RegisteredModel.objects.create(
        name=name or f"model-{next(_counter)}",
        description=description,
        tags=tags or {},
        aliases=aliases or {},
        creation_timestamp=fields.pop("creation_timestamp", stamp),
        last_updated_timestamp=fields.pop("last_updated_timestamp", stamp),
        deleted=deleted,
        **fields,
    )


def make_version(
    model: RegisteredModel,
    version: int | None = None,
    *,
    stage: str = Stage.NONE,
    aliases: list[str] | None = None,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    description: str = "",
    run_id: str | None = None,
    experiment_id: str = "1",
    deleted: bool = False,
    **fields: Any,
) -> ModelVersion:
    """A version of `model` (next number by default). Aliases are also set on the model, as MLflow
    reports them in both places."""
    if version is None:
        version = (
            model.versions.order_by("-version").values_list("version", flat=True).first() or 0
        ) + 1
    stamp = now_ms()
    created = ModelVersion.objects.create(
        model=model,
        version=version,
        stage=stage,
        status=fields.pop("status", "READY"),
        source=fields.pop("source", f"models:/m-{next(_counter)}"),
        run_id=run_id if run_id is not None else f"run{next(_counter):08d}",
        experiment_id=experiment_id,
        description=description,
        tags=tags or {},
        aliases=aliases or [],
        metrics=metrics if metrics is not None else {},
        params={key: str(value) for key, value in (params or {}).items()},
        creation_timestamp=fields.pop("creation_timestamp", stamp),
        last_updated_timestamp=fields.pop("last_updated_timestamp", stamp),
        deleted=deleted,
        **fields,
    )
    if aliases:
        model.aliases = {**model.aliases, **{alias: version for alias in aliases}}
        model.save(update_fields=["aliases"])
    return created


def make_history(version: ModelVersion, key: str, values: list[float]) -> MetricHistory:
    """A cached history for one of a version's run metrics, as `registry.history` stores it."""
    return MetricHistory.objects.create(
        run_id=version.run_id,
        key=key,
        points=[[step, value, 1_700_000_000_000 + step] for step, value in enumerate(values)],
    )


def cache_all_history(version: ModelVersion, steps: int = 5) -> None:
    """Cache a made-up descending-then-flat curve for every metric of the version, so pages
    never need MLflow for it."""
    for key, final in (version.metrics or {}).items():
        make_history(version, key, [final * (1 + (steps - step) / 10) for step in range(steps)])


def make_hostile_request(*, requester, voter, decision: str, text: str):
    """A model, versions, request and vote whose every piece of MLflow and user text is `text`.

    v1 holds Production; v2 is the candidate, with `text` as its description, a metric key, a
    param, a tag (and their cached history); the request's comment and the vote's comment are
    `text` too. Returns the request.
    """
    from reviews import services

    model = make_model(text, description=text, tags={text: text})
    make_version(model, stage=Stage.PRODUCTION, metrics={"accuracy": 0.85, "f1": 0.8})
    candidate = make_version(
        model,
        metrics={"accuracy": 0.9, "f1": 0.85, text: 0.5},
        params={text: text},
        tags={text: text},
        description=text,
    )
    cache_all_history(candidate)
    request = services.request_create(
        model=text, version=2, target="Production", requester=requester, comment=text
    )
    services.vote_cast(request_id=request.pk, user=voter, decision=decision, comment=text)
    return request


# Actions a long audit history is made of, so that its filter has something to list.
CHAIN_ACTIONS = ("request.created", "vote.cast", "request.approved", "transition.done")


def make_audit_chain(count: int, *, batch: int = 5000) -> None:
    """Appends `count` events to the audit chain in bulk, each hashed exactly as
    `audit.record` hashes it: a long, valid history in seconds rather than minutes.

    Rows are written directly (no `event_recorded` signal, so no mail or webhooks), under the
    chain head's lock, and the head is moved to the last one.
    """
    from reviews import audit
    from reviews.models import AuditEvent, AuditHead

    AuditHead.objects.get_or_create(name="audit")
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().get(name="audit")
        first = head.sequence + 1
        start = timezone.now() - timedelta(seconds=count)
        rows: list[AuditEvent] = []
        for sequence in range(first, first + count):
            fields: dict[str, Any] = {
                "created_at": start + timedelta(seconds=sequence - first),
                "actor": f"user{sequence % 40}",
                "action": CHAIN_ACTIONS[sequence % len(CHAIN_ACTIONS)],
                "model_name": f"model-{sequence % 200:03d}",
                "version": sequence % 10 + 1,
                "details": {"n": sequence},
            }
            content = audit.canonical(sequence=sequence, request_id=None, **fields)
            digest = audit.chain_hash(head.hash, content)
            rows.append(AuditEvent(sequence=sequence, prev_hash=head.hash, hash=digest, **fields))
            head.sequence, head.hash = sequence, digest
            if len(rows) == batch:
                AuditEvent.objects.bulk_create(rows)
                rows = []
        AuditEvent.objects.bulk_create(rows)
        head.save(update_fields=["sequence", "hash"])


# -- hostile registries, written into a real MLflow server with MLflow's own client --------------

# What each poisoned version of `register_unmirrorable` carries, by version number.
UNMIRRORABLE = {
    2: "a run id with both quote characters (mirrored without its run)",
    3: "a run id longer than any MLflow makes",
    4: "a tag value holding a NUL character",
    5: "a description holding a NUL character",
}


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
