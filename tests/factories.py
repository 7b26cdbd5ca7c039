"""Rows the tests write straight into Quorum's database, and what they read back from it: users,
mirror rows (models, versions, their content digests and metric histories), requests and votes
opened through the review engine, long audit chains; the sync's registry changes and the audit's
actions.

`make_*` write mirror rows directly, for tests of pages and comparisons: the sync is the only
writer in production; these stand in for what it would have written, so view tests do not need an
MLflow server. Models in a real MLflow server are made by tests/mlflow_registry.py; policy files
are in tests/policy_files.py and mail in tests/mail.py.

Plain functions only: no fixtures and no imports from test modules, so bench/ may use them too.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import transaction
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


def audit_actions(name: str, prefix: str) -> list[str]:
    """The actions of model `name`'s audit events that start with `prefix`, in order."""
    from reviews.models import AuditEvent

    events = AuditEvent.objects.filter(model_name=name, action__startswith=prefix)
    return list(events.order_by("sequence").values_list("action", flat=True))
