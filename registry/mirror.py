"""Writing what MLflow said into the mirror, and recording every difference as a change.

`apply_mlflow_state` compares MLflow's models and versions with the mirror's rows in memory and
writes in a handful of bulk queries, so its cost grows with what changed plus one read of the
rows concerned. `registry.sync` decides what to read from MLflow and holds the lock around this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .mlflow_client import MlflowModel, MlflowRun, MlflowVersion
from .models import ChangeKind, ModelVersion, RegisteredModel, RegistryChange, SyncRun
from .signals import changes_observed

WRITE_BATCH = 500


@dataclass
class Applied:
    models: int
    versions: int
    changes: int
    change_ids: list[int] = field(default_factory=list)


def apply_mlflow_state(
    *,
    models: dict[str, MlflowModel],
    versions: list[MlflowVersion],
    runs: dict[str, MlflowRun],
    complete_models: set[str],
    all_models_listed: bool,
    sync_run: SyncRun,
    deleted_models: set[str] = frozenset(),  # type: ignore[assignment]
) -> Applied:
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
    return Applied(
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


# Version fields whose every change is recorded as a RegistryChange of that kind; aliases are
# recorded one alias at a time (`_record_alias_changes`).
RECORDED_KINDS = {
    "stage": ChangeKind.STAGE_CHANGED,
    "tags": ChangeKind.TAGS_CHANGED,
    "description": ChangeKind.DESCRIPTION_CHANGED,
}


def _update_version(row: ModelVersion, v: MlflowVersion, aliases, run, change) -> bool:
    """Copies MLflow's state onto a mirrored version, recording each difference; True if any."""
    changed = False
    if row.deleted:
        row.deleted = False
        changed = True
    # In this order: a stage change is recorded before the alias moves of the same sync.
    recorded = {"stage": v.stage, "aliases": aliases, "tags": v.tags, "description": v.description}
    for attr, new in recorded.items():
        old = getattr(row, attr)
        if old == new:
            continue
        if attr == "aliases":
            _record_alias_changes(row, old, new, change)
        else:
            change(row.model, row, RECORDED_KINDS[attr], old=old, new=new)
        setattr(row, attr, new)
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
