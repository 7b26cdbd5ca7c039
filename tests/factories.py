"""Small factories every test module shares: mirror rows, requests, and models in a real MLflow.

`make_*` write mirror rows directly, for tests of pages and comparisons: the sync is the only
writer in production; these stand in for what it would have written, so view tests do not need an
MLflow server. `register_*` write into a real MLflow server with its REST API or MLflow's own
client; tests of the sync and of history use those.

Plain functions only: no fixtures and no imports from test modules, so bench/ may use them too.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from registry.models import (
    MetricHistory,
    ModelVersion,
    RegisteredModel,
    RegistryChange,
    Stage,
    VersionContent,
)

if TYPE_CHECKING:
    from reviews.models import AuditEvent, TransitionRequest, Vote

_counter = itertools.count(1)


# The policies most tests run under (the `policies` fixture loads them).
STANDARD_POLICIES = """
groups:
  ml-leads: [lead]
  data-science: [scientist1, scientist2, scientist3]
policies:
  - name: production
    models: ["*"]
    targets: [Production, "@champion"]
    require:
      - {group: ml-leads, approvals: 1}
      - {group: data-science, approvals: 2}
    expires_after: 7d
    archive_existing: true
    gates:
      - {metric: accuracy, op: ">=", value: 0.80, kind: required}
      - {metric: f1, op: ">=", baseline_delta: -0.01, kind: required}
  - name: staging
    models: ["*"]
    targets: [Staging]
    require: [{group: data-science, approvals: 1}]
    gates:
      - {metric: accuracy, op: ">", value: 0.97, kind: auto_approve}
"""


def policies_with(*, rollback: bool = False, break_glass: str | None = None) -> str:
    """STANDARD_POLICIES with an `oncall: [outsider]` group and, on the production policy, a
    `rollback:` section needing one ml-leads approval and/or a `break_glass:` section for oncall
    (`break_glass`: its settings, e.g. "ratify_within: 24h, on_unratified: alert")."""
    extra = ""
    if rollback:
        extra += "    rollback: {require: [{group: ml-leads, approvals: 1}]}\n"
    if break_glass is not None:
        extra += f"    break_glass: {{groups: [oncall], {break_glass}}}\n"
    return STANDARD_POLICIES.replace(
        "  data-science: [scientist1, scientist2, scientist3]\n",
        "  data-science: [scientist1, scientist2, scientist3]\n  oncall: [outsider]\n",
    ).replace("    archive_existing: true\n", "    archive_existing: true\n" + extra)


def break_glass_policies(on_unratified: str) -> str:
    """`policies_with` a break-glass section for oncall, ratified within an hour, and
    `on_unratified` ("revert" or "alert")."""
    return policies_with(break_glass=f"ratify_within: 1h, on_unratified: {on_unratified}")


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
    content: bool = True,
    **fields: Any,
) -> ModelVersion:
    """A version of `model` (next number by default). Aliases are also set on the model, as MLflow
    reports them in both places. Its content digest is stored as the digest job would (files of
    its own), unless `content=False`: a request on it pins that digest."""
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
    if content:
        make_content(created, model_files(created))
    return created


def model_files(version: ModelVersion) -> dict[str, bytes]:
    """Model files of a version's own: its digest differs from every other version's."""
    weights = f"{version.model.name} v{version.version}".encode()
    return {"MLmodel": b"flavors: {}", "model.pkl": weights}


def make_content(
    version: ModelVersion,
    files: dict[str, bytes] | None = None,
    *,
    reason: str = "",
    location: str = "mlflow-artifacts:/1/models/m-test/artifacts",
) -> VersionContent:
    """`version`'s stored content digest: the manifest of `files` (path -> bytes), or unknown
    with `reason`, as the digest job would store it."""
    import hashlib

    from quorum_cli.manifest import FileEntry, build
    from registry.content import ReadContent, store

    if reason:
        return store(version, ReadContent(manifest=None, reason=reason, location=location))
    files = files if files is not None else {"MLmodel": b"flavors: {}", "model.pkl": b"weights"}
    entries = [
        FileEntry(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        for path, data in files.items()
    ]
    return store(version, ReadContent(manifest=build(entries), location=location))


# Metrics of a version every standard gate passes.
GOOD = {"accuracy": 0.91, "f1": 0.88}


def make_fraud_detector() -> RegisteredModel:
    """fraud-detector: v1 in Production, v2 a better candidate, v3 in Staging."""
    model = make_model("fraud-detector", description="scores payments", aliases={"champion": 1})
    make_version(model, 1, stage="Production", aliases=["champion"], metrics={"f1": 0.87})
    make_version(model, 2, metrics=GOOD, params={"alpha": "0.2"})
    make_version(model, 3, stage="Staging", metrics=GOOD)
    return model


def make_mirror(name: str = "fraud-detector", versions=None) -> dict[int, ModelVersion]:
    """Bare mirror rows as a sync would have written them, `versions` as {number: (stage,
    metrics)}: by default v1 in Production and v2 a better candidate. Returns them by number."""
    versions = versions or {
        1: ("Production", {"accuracy": 0.89, "f1": 0.87}),
        2: ("None", {"accuracy": 0.91, "f1": 0.88}),
    }
    model = RegisteredModel.objects.create(name=name)
    made = {
        number: ModelVersion.objects.create(
            model=model, version=number, stage=stage, metrics=metrics, run_id=f"run{number}"
        )
        for number, (stage, metrics) in versions.items()
    }
    for version in made.values():
        make_content(version, model_files(version))
    return made


def make_fraud_model() -> RegisteredModel:
    """`fraud` in the mirror: v1 in Production; v2 better on every metric; v3 fails the standard
    production policy's accuracy gate. Every metric's history is cached, so its pages never need
    MLflow."""
    model = make_model("fraud", description="Scores card payments.")
    specs = [
        (Stage.PRODUCTION, {"accuracy": 0.85, "f1": 0.80, "log_loss": 0.40}),
        (Stage.NONE, {"accuracy": 0.90, "f1": 0.84, "log_loss": 0.31}),
        (Stage.NONE, {"accuracy": 0.70, "f1": 0.84, "log_loss": 0.50}),
    ]
    for number, (stage, metrics) in enumerate(specs, start=1):
        version = make_version(
            model, number, stage=stage, metrics=metrics, params={"lr": number / 10}
        )
        cache_all_history(version)
    return model


def make_request(model: str, version: int = 2, target: str = "Production", *, requester, **fields):
    """A transition request opened through the review engine, as a requester would open it
    (policies decide, gates run, the audit records it)."""
    from reviews.decisions import opening

    return opening.request_create(
        model=model, version=version, target=target, requester=requester, **fields
    )


def open_request(
    requester, version: int = 2, target: str = "Production", model: str = "fraud-detector", **kwargs
) -> TransitionRequest:
    """`make_request` with the requester first: fraud-detector v2 → Production unless told."""
    return make_request(model, version, target, requester=requester, **kwargs)


def approve(request, user, comment: str = "") -> Vote:
    """`user` approves `request` through the engine (`voting.vote_cast`)."""
    from reviews.decisions import voting

    return voting.vote_cast(request_id=request.pk, user=user, decision="approve", comment=comment)


def reloaded(request) -> TransitionRequest:
    """`request` as the database holds it now."""
    from reviews.models import TransitionRequest

    return TransitionRequest.objects.get(pk=request.pk)


def registry_changes(name: str, kind: str | None = None):
    """The changes the sync recorded for model `name`, of one `kind` if given."""
    rows = RegistryChange.objects.filter(model__name=name)
    return rows.filter(kind=kind) if kind else rows


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


# Markup in MLflow or user text, and how a page must show it: as text, never as an element.
HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def make_hostile_request(*, requester, voter, decision: str, text: str):
    """A model, versions, request and vote whose every piece of MLflow and user text is `text`.

    v1 holds Production; v2 is the candidate, with `text` as its description, a metric key, a
    param, a tag (and their cached history); the request's comment and the vote's comment are
    `text` too. Returns the request.
    """
    from reviews.decisions import voting

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
    request = make_request(text, requester=requester, comment=text)
    voting.vote_cast(request_id=request.pk, user=voter, decision=decision, comment=text)
    return request


def record_audit_events(count: int, *, start: int = 1) -> list[AuditEvent]:
    """`count` events appended through `chain.record`, numbered from `start` (version and
    details), with text a CSV has to quote."""
    from reviews.audit import chain

    return [
        chain.record(
            "test.event",
            actor=f"user{n}",
            model_name="fraud-model",
            version=n,
            details={"n": n, "note": 'ünïcode, commas and "quotes"\nnew line'},
        )
        for n in range(start, start + count)
    ]


# Actions a long audit history is made of, so that its filter has something to list.
CHAIN_ACTIONS = ("request.created", "vote.cast", "request.approved", "transition.done")


def make_audit_chain(count: int, *, batch: int = 5000) -> None:
    """Appends `count` events to the audit chain in bulk, each hashed exactly as
    `chain.record` hashes it: a long, valid history in seconds rather than minutes.

    Rows are written directly (no `event_recorded` signal, so no mail or webhooks), under the
    chain head's lock, and the head is moved to the last one.
    """
    from reviews.audit import chain
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
            content = chain.canonical(sequence=sequence, request_id=None, **fields)
            digest = chain.chain_hash(head.hash, content)
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


def approve_all(request, *voters, capture) -> None:
    """Each of `voters` approves `request`; the on-commit callbacks (the transition's enqueue) run
    through `capture` (pytest-django's `django_capture_on_commit_callbacks`)."""
    from reviews.decisions import voting

    with capture(execute=True):
        for voter in voters:
            voting.vote_cast(request_id=request.pk, user=voter, decision="approve")


def transition_actions(request) -> list[str]:
    """The request's `transition.*` audit events, in order."""
    from reviews.models import AuditEvent

    events = AuditEvent.objects.filter(request=request, action__startswith="transition.")
    return list(events.order_by("sequence").values_list("action", flat=True))


def mlflow_stages(client, name: str) -> dict[int, str]:
    """Each version of model `name` and its stage, as MLflow says now."""
    return {v.version: v.stage for v in client.list_versions(name)}


def audit_actions(name: str, prefix: str) -> list[str]:
    """The actions of model `name`'s audit events that start with `prefix`, in order."""
    from reviews.models import AuditEvent

    events = AuditEvent.objects.filter(model_name=name, action__startswith=prefix)
    return list(events.order_by("sequence").values_list("action", flat=True))


def rendered_mail(event, kind: str) -> dict[str, str]:
    """The mail of `kind` that `event` sends, rendered (subject, text, html)."""
    from reviews import notify

    return notify.render(event, kind)


ROOT = Path(__file__).resolve().parent.parent


def quorum_verify(*args: str, tracking_uri: str | None, **env: str) -> subprocess.CompletedProcess:
    """`quorum verify ARGS` with only the given environment, as a CI step would run it."""
    environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env}
    if tracking_uri:
        environment["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.run(
        [sys.executable, "-m", "quorum_cli", "verify", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


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


# -- mail, as the notification tests send and read it -------------------------------------------

# Where the links in mail point (the notification tests' `mailroom` sets QUORUM_BASE_URL to it).
MAIL_BASE_URL = "https://quorum.example.com"
# Whom the standard policies ask to review a Production request: ml-leads and data-science.
STANDARD_APPROVERS = {"lead", "scientist1", "scientist2", "scientist3"}


def mail_recipients(messages) -> set[str]:
    """The usernames the messages went to; each message has exactly one recipient."""
    assert all(len(m.to) == 1 for m in messages)
    names = [m.to[0].split("@")[0] for m in messages]
    assert len(names) == len(set(names)), f"someone got two mails: {sorted(names)}"
    return set(names)


def mail_subjects(messages) -> set[str]:
    return {m.subject for m in messages}


def mail_html(message) -> str:
    """A mail's HTML part."""
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


def mail_link(request) -> str:
    """The request page's address as a mail gives it."""
    return MAIL_BASE_URL + reverse("reviews:request_detail", args=[request.pk])


def request_committed(requester, committed, **kwargs) -> TransitionRequest:
    """`open_request` in a transaction whose on-commit work (the mail's enqueue) runs when it
    ends; `committed` is the fixture of that name."""
    with committed():
        return open_request(requester, **kwargs)


def vote_committed(request, user, committed, decision="approve", comment=""):
    """A vote through the engine, its on-commit work run as in `request_committed`."""
    from reviews.decisions import voting

    with committed():
        voting.vote_cast(request_id=request.pk, user=user, decision=decision, comment=comment)


# -- policy files, as the policy tests load them -------------------------------------------------

# A file with a policy for each of two targets, its groups' members named (the policy tests'
# `people` fixture creates them).
POLICY_FILE_EXAMPLE = textwrap.dedent(
    """
    groups:
      ml-leads: [alice]
      data-science: [bob, carol, dave]
    policies:
      - name: production
        models: ["*"]
        targets: [Production, "@champion"]
        requesters: [data-science, ml-leads]
        require:
          - {group: ml-leads, approvals: 1}
          - {group: data-science, approvals: 2}
        allow_self_approval: false
        expires_after: 7d
        archive_existing: true
        gates:
          - {metric: accuracy, op: ">=", value: 0.80, kind: required}
          - {metric: f1, op: ">=", baseline_delta: -0.01, kind: required}
          - {metric: accuracy, op: ">", value: 0.97, kind: auto_approve}
      - name: staging
        models: ["*"]
        targets: [Staging]
        require: [{group: data-science, approvals: 1}]
    """
)


def policy_problems(text: str) -> list[str]:
    """The problems as the load_policies command writes them, `place: message`."""
    import pytest

    from reviews.errors import PolicyInvalid
    from reviews.policies.loading import policies_load

    with pytest.raises(PolicyInvalid) as caught:
        policies_load(text=text)
    return [str(problem) for problem in caught.value.problems]
