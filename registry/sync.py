"""Mirroring MLflow's Model Registry into Quorum's database.

Three ways in, one way to write:

- **full**: every registered model, every version, and every version's run (metrics and params)
  in batched `search_runs` calls. Versions and models gone from MLflow are marked deleted, never
  dropped. Nightly, and whenever someone asks for it.
- **incremental**: every registered model (one call per 1,000: that is where aliases live), plus
  versions walked newest-first by `last_updated_timestamp` until the mirror's watermark, plus a
  complete listing of only those models whose own timestamp moved (MLflow bumps it when a version
  is created, transitioned or deleted, which is how deletions are noticed). A quiet registry costs
  two calls whatever its size. Version tags set in MLflow bump no timestamp: the webhook and the
  nightly full sync pick those up.
- **model**: one model's versions completely, and the runs of versions it has not read yet (the
  webhook receiver and the transition job queue these).

Each observed difference becomes a `RegistryChange`: the review app reads them to tell the
transitions its own jobs made from the ones made in MLflow directly. Syncs are serialised by a row
lock so a webhook-triggered sync and the periodic one never interleave their writes, and a sync
that fails part way (MLflow went down) writes nothing but its `SyncRun` error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .mlflow_client import MlflowError, MlflowModel, MlflowRun, MlflowVersion, RegistryClient
from .models import (
    ChangeKind,
    ModelVersion,
    RegisteredModel,
    RegistryChange,
    SyncKind,
    SyncLock,
    SyncRun,
)
from .signals import changes_observed

logger = logging.getLogger(__name__)

# Re-read versions updated this long before the newest one already mirrored: a write MLflow
# committed late, or stamped by a server process whose clock lags a little, is still seen.
# Larger costs a quiet registry more pages per sync; the nightly full sync is the backstop.
WATERMARK_MARGIN_MS = 5_000
WRITE_BATCH = 500

# progress(step description, done, total)
Progress = Callable[[str, int, int], None]


@dataclass
class SyncResult:
    kind: str
    models: int = 0
    versions: int = 0
    changes: int = 0
    mlflow_calls: int = 0
    seconds: float = 0.0
    change_ids: list[int] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return (
            f"synced {self.models} models, {self.versions} versions, "
            f"{self.changes} changes in {self.seconds:.2f} s"
        )


class SyncError(Exception):
    """The sync could not finish; nothing it read was written."""


def sync_registry(
    *,
    full: bool = False,
    model: str | None = None,
    client: RegistryClient | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Brings the mirror up to date with MLflow and records what changed.

    `model` syncs that one model completely; `full` the whole registry; otherwise incremental
    (which falls back to full while the mirror is empty). Raises `SyncError` when MLflow cannot
    be read; the failure is kept on the `SyncRun` row.
    """
    client = client or RegistryClient()
    kind = SyncKind.MODEL if model is not None else SyncKind.FULL if full else SyncKind.INCREMENTAL
    run = SyncRun.objects.create(kind=kind, model_name=model or "")
    started = time.perf_counter()
    calls_before = client.calls
    SyncLock.objects.get_or_create(name="registry")
    try:
        with transaction.atomic():
            # Held while reading MLflow too: two syncs that read in one order and wrote in the
            # other would record a change backwards.
            SyncLock.objects.select_for_update().get(name="registry")
            if kind == SyncKind.MODEL:
                result = _sync_one_model(client, model or "", run, progress)
            elif kind == SyncKind.INCREMENTAL and _watermark() is not None:
                result = _sync_incremental(client, run, progress)
            else:
                result = _sync_full(client, run, progress)
    except MlflowError as error:
        run.error = str(error)
        run.seconds = time.perf_counter() - started
        run.mlflow_calls = client.calls - calls_before
        run.finished_at = timezone.now()
        run.save(update_fields=["error", "seconds", "mlflow_calls", "finished_at"])
        logger.warning("registry sync failed: %s", error)
        raise SyncError(str(error)) from error
    result.kind = kind
    result.mlflow_calls = client.calls - calls_before
    result.seconds = time.perf_counter() - started
    run.models_seen = result.models
    run.versions_seen = result.versions
    run.changes_count = result.changes
    run.mlflow_calls = result.mlflow_calls
    run.seconds = result.seconds
    run.finished_at = timezone.now()
    run.save()
    logger.info("%s sync: %s (%d MLflow calls)", kind, result, result.mlflow_calls)
    return result


# -- the three ways of reading MLflow --------------------------------------------------------


def _sync_full(client: RegistryClient, run: SyncRun, progress: Progress | None) -> SyncResult:
    _report(progress, "listing models", 0, 4)
    models = client.list_models()
    _report(progress, "listing versions", 1, 4)
    versions = client.list_versions()
    _report(progress, f"reading {len(versions)} runs", 2, 4)
    runs = client.get_runs(v.run_id for v in versions)
    _report(progress, "writing the mirror", 3, 4)
    result = _apply(
        models={m.name: m for m in models},
        versions=versions,
        runs=runs,
        complete_models={m.name for m in models},
        all_models_listed=True,
        sync_run=run,
    )
    _report(progress, "done", 4, 4)
    return result


def _sync_incremental(
    client: RegistryClient, run: SyncRun, progress: Progress | None
) -> SyncResult:
    _report(progress, "listing models", 0, 3)
    models = {m.name: m for m in client.list_models()}
    mirrored_stamps = dict(
        RegisteredModel.objects.filter(deleted=False).values_list("name", "last_updated_timestamp")
    )
    since = (_watermark() or 0) - WATERMARK_MARGIN_MS

    _report(progress, "reading recent versions", 1, 3)
    versions: dict[tuple[str, int], MlflowVersion] = {}
    for version in client.iter_versions_newest_first():
        if (version.last_updated_timestamp or 0) < since:
            break
        versions[(version.name, version.version)] = version
    # A model whose own timestamp moved had a version created, transitioned or deleted: list it
    # completely so a deletion is seen too.
    moved = sorted(
        name
        for name, m in models.items()
        if name not in mirrored_stamps or mirrored_stamps[name] != m.last_updated_timestamp
    )
    for name in moved:
        for version in client.list_versions(name):
            versions[(version.name, version.version)] = version

    needing_runs = _versions_needing_runs(versions.values())
    runs = client.get_runs(v.run_id for v in needing_runs)
    _report(progress, "writing the mirror", 2, 3)
    result = _apply(
        models=models,
        versions=list(versions.values()),
        runs=runs,
        complete_models=set(moved),
        all_models_listed=True,
        sync_run=run,
    )
    _report(progress, "done", 3, 3)
    return result


def _sync_one_model(
    client: RegistryClient, name: str, run: SyncRun, progress: Progress | None
) -> SyncResult:
    _report(progress, f"reading {name}", 0, 2)
    found = client.get_model(name)
    if found is None:
        # Gone from MLflow (or never there): mark the mirror's copy deleted, if it has one.
        _report(progress, "writing the mirror", 1, 2)
        result = _apply(
            models={},
            versions=[],
            runs={},
            complete_models=set(),
            all_models_listed=False,
            deleted_models={name},
            sync_run=run,
        )
        _report(progress, "done", 2, 2)
        return result
    versions = client.list_versions(name)
    # Runs the mirror already holds are not read again (a transition job syncs its model after
    # every move); a run that logs more metrics later is picked up by the nightly full sync.
    runs = client.get_runs(v.run_id for v in _versions_needing_runs(versions))
    _report(progress, "writing the mirror", 1, 2)
    result = _apply(
        models={name: found},
        versions=versions,
        runs=runs,
        complete_models={name},
        all_models_listed=False,
        sync_run=run,
    )
    _report(progress, "done", 2, 2)
    return result


def _versions_needing_runs(versions: Iterable[MlflowVersion]) -> list[MlflowVersion]:
    """Versions whose run the mirror has not read yet (new, or pointing at another run)."""
    versions = [v for v in versions if v.run_id]
    if not versions:
        return []
    known = {
        (name, number): (run_id, bool(metrics) or bool(params))
        for name, number, run_id, metrics, params in ModelVersion.objects.filter(
            model__name__in={v.name for v in versions}
        ).values_list("model__name", "version", "run_id", "metrics", "params")
    }
    return [
        v
        for v in versions
        if known.get((v.name, v.version)) is None
        or known[(v.name, v.version)][0] != v.run_id
        or not known[(v.name, v.version)][1]
    ]


# -- writing the mirror ----------------------------------------------------------------------


def _apply(
    *,
    models: dict[str, MlflowModel],
    versions: list[MlflowVersion],
    runs: dict[str, MlflowRun],
    complete_models: set[str],
    all_models_listed: bool,
    sync_run: SyncRun,
    deleted_models: set[str] = frozenset(),  # type: ignore[assignment]
) -> SyncResult:
    """Writes what MLflow said into the mirror in a handful of bulk queries; returns the counts.

    Relies on bulk_create setting primary keys (PostgreSQL, SQLite >= 3.35).

    `complete_models`: models whose every version is in `versions`, so a mirrored version that is
    missing was deleted. `all_models_listed`: `models` is the whole registry, so a mirrored model
    that is missing was deleted.
    """
    changes: list[RegistryChange] = []

    def change(model_row, version_row, kind, old=None, new=None):
        changes.append(
            RegistryChange(
                model=model_row,
                version=version_row,
                kind=kind,
                old=old,
                new=new,
                sync_run=sync_run,
            )
        )

    # Models -------------------------------------------------------------------------------
    if all_models_listed:
        model_rows = {m.name: m for m in RegisteredModel.objects.all()}
    else:
        names = set(models) | set(deleted_models)
        model_rows = {m.name: m for m in RegisteredModel.objects.filter(name__in=names)}

    new_models = [
        RegisteredModel(
            name=m.name,
            description=m.description,
            tags=m.tags,
            aliases={},  # set below, with the alias changes recorded per version
            creation_timestamp=m.creation_timestamp,
            last_updated_timestamp=m.last_updated_timestamp,
        )
        for name, m in models.items()
        if name not in model_rows
    ]
    RegisteredModel.objects.bulk_create(new_models, batch_size=WRITE_BATCH)
    for row in new_models:
        model_rows[row.name] = row
        change(row, None, ChangeKind.MODEL_CREATED)
    changed_models: dict[str, RegisteredModel] = {}
    alias_moved: set[str] = {m.name for m in new_models if models[m.name].aliases}
    for name, m in models.items():
        row = model_rows[name]
        fields = {
            "description": m.description,
            "tags": m.tags,
            "creation_timestamp": m.creation_timestamp,
            "last_updated_timestamp": m.last_updated_timestamp,
            "deleted": False,
        }
        for attr, value in fields.items():
            if getattr(row, attr) != value:
                setattr(row, attr, value)
                changed_models[name] = row
        if row.aliases != _alias_map_json(m.aliases):
            alias_moved.add(name)

    gone_models = {
        name
        for name, row in model_rows.items()
        if not row.deleted
        and ((all_models_listed and name not in models) or name in deleted_models)
    }
    for name in gone_models:
        row = model_rows[name]
        row.deleted = True
        changed_models[name] = row
        change(row, None, ChangeKind.MODEL_DELETED)

    # Versions -----------------------------------------------------------------------------
    touched = {v.name for v in versions} | complete_models | alias_moved | gone_models
    version_rows: dict[tuple[str, int], ModelVersion] = {}
    rows_by_id = {row.pk: row for row in model_rows.values()}
    touched_rows = [model_rows[n] for n in touched if n in model_rows and model_rows[n].pk]
    if touched_rows:
        for row in ModelVersion.objects.filter(model__in=touched_rows):
            row.model = rows_by_id[row.model_id]  # the row in memory: no query per version
            version_rows[(row.model.name, row.version)] = row

    new_versions: list[ModelVersion] = []
    changed_versions: dict[int, ModelVersion] = {}
    seen: set[tuple[str, int]] = set()
    for v in versions:
        if v.name not in model_rows:  # listed between the two calls: next sync gets its model
            continue
        key = (v.name, v.version)
        seen.add(key)
        model_row = model_rows[v.name]
        aliases = _aliases_of(models.get(v.name), v.version)
        run = runs.get(v.run_id) if v.run_id else None
        row = version_rows.get(key)
        if row is None:
            row = ModelVersion(
                model=model_row,
                version=v.version,
                stage=v.stage,
                status=v.status,
                source=v.source,
                run_id=v.run_id,
                description=v.description,
                tags=v.tags,
                aliases=aliases,
                creation_timestamp=v.creation_timestamp,
                last_updated_timestamp=v.last_updated_timestamp,
                experiment_id=run.experiment_id if run else "",
                metrics=run.metrics if run else {},
                params=run.params if run else {},
            )
            new_versions.append(row)
            version_rows[key] = row
            continue
        if _update_version(row, v, aliases, run, change):
            changed_versions[id(row)] = row

    # Aliases live on the registered model: one moving touches versions nobody listed.
    for key, row in version_rows.items():
        name, number = key
        if key in seen or row.deleted or name not in alias_moved or name not in models:
            continue
        aliases = _aliases_of(models[name], number)
        if aliases != row.aliases:
            _record_alias_changes(row, row.aliases, aliases, change)
            row.aliases = aliases
            changed_versions[id(row)] = row

    for key, row in version_rows.items():
        name, _ = key
        if row.deleted or row.pk is None:
            continue
        if (name in complete_models and key not in seen) or name in gone_models:
            row.deleted = True
            changed_versions[id(row)] = row
            change(row.model, row, ChangeKind.VERSION_DELETED, old=row.stage)

    for name in alias_moved:
        if name in models and name in model_rows:
            model_rows[name].aliases = _alias_map_json(models[name].aliases)
            changed_models[name] = model_rows[name]

    # Write --------------------------------------------------------------------------------
    ModelVersion.objects.bulk_create(new_versions, batch_size=WRITE_BATCH)
    for row in new_versions:
        change(
            row.model,
            row,
            ChangeKind.VERSION_CREATED,
            new={"stage": row.stage, "aliases": row.aliases},
        )
    if changed_versions:
        ModelVersion.objects.bulk_update(
            list(changed_versions.values()), VERSION_FIELDS, batch_size=WRITE_BATCH
        )
    if changed_models:
        RegisteredModel.objects.bulk_update(
            list(changed_models.values()), MODEL_FIELDS, batch_size=WRITE_BATCH
        )
    created = RegistryChange.objects.bulk_create(changes, batch_size=WRITE_BATCH)
    if created:
        # Receivers run in this transaction: their conclusions commit with the mirror or not at all.
        changes_observed.send(sender=RegistryChange, changes=created)
    return SyncResult(
        kind="",
        models=len(models),
        versions=len(versions),
        changes=len(created),
        change_ids=[c.pk for c in created if c.pk is not None],
    )


VERSION_FIELDS = [
    "stage",
    "status",
    "source",
    "run_id",
    "description",
    "tags",
    "aliases",
    "creation_timestamp",
    "last_updated_timestamp",
    "experiment_id",
    "metrics",
    "params",
    "deleted",
    "synced_at",
]
MODEL_FIELDS = [
    "description",
    "tags",
    "aliases",
    "creation_timestamp",
    "last_updated_timestamp",
    "deleted",
    "synced_at",
]


def _update_version(row: ModelVersion, v: MlflowVersion, aliases, run, change) -> bool:
    """Copies MLflow's state onto a mirrored version, recording each difference; True if any."""
    changed = False
    if row.deleted:
        row.deleted = False
        changed = True
    if row.stage != v.stage:
        change(row.model, row, ChangeKind.STAGE_CHANGED, old=row.stage, new=v.stage)
        row.stage = v.stage
        changed = True
    if row.aliases != aliases:
        _record_alias_changes(row, row.aliases, aliases, change)
        row.aliases = aliases
        changed = True
    if row.tags != v.tags:
        change(row.model, row, ChangeKind.TAGS_CHANGED, old=row.tags, new=v.tags)
        row.tags = v.tags
        changed = True
    if row.description != v.description:
        change(
            row.model, row, ChangeKind.DESCRIPTION_CHANGED, old=row.description, new=v.description
        )
        row.description = v.description
        changed = True
    if run is not None:
        if row.metrics and row.metrics != run.metrics:
            change(row.model, row, ChangeKind.METRICS_CHANGED, old=row.metrics, new=run.metrics)
        if (row.metrics, row.params, row.experiment_id) != (
            run.metrics,
            run.params,
            run.experiment_id,
        ):
            row.metrics, row.params, row.experiment_id = run.metrics, run.params, run.experiment_id
            changed = True
    plain = {
        "status": v.status,
        "source": v.source,
        "run_id": v.run_id,
        "creation_timestamp": v.creation_timestamp,
        "last_updated_timestamp": v.last_updated_timestamp,
    }
    for attr, value in plain.items():
        if getattr(row, attr) != value:
            setattr(row, attr, value)
            changed = True
    return changed


def _record_alias_changes(row: ModelVersion, old: list[str], new: list[str], change) -> None:
    for alias in sorted(set(old) - set(new)):
        change(row.model, row, ChangeKind.ALIAS_REMOVED, old=alias)
    for alias in sorted(set(new) - set(old)):
        change(row.model, row, ChangeKind.ALIAS_ADDED, new=alias)


def _aliases_of(model: MlflowModel | None, version: int) -> list[str]:
    if model is None:
        return []
    return sorted(alias for alias, number in model.aliases.items() if number == version)


def _alias_map_json(aliases: dict[str, int]) -> dict[str, int]:
    return dict(sorted(aliases.items()))


def _watermark() -> int | None:
    return ModelVersion.objects.aggregate(newest=Max("last_updated_timestamp"))["newest"]


def _report(progress: Progress | None, step: str, done: int, total: int) -> None:
    if progress is not None:
        progress(step, done, total)
