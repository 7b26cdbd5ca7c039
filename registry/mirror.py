"""Writing what MLflow said into the mirror, and recording every difference as a change.

`apply_mlflow_state` compares MLflow's models and versions with the mirror's rows in memory and
writes in a handful of bulk queries, so its cost grows with what changed plus one read of the
rows concerned. `registry.sync` decides what to read from MLflow and holds the lock around this.

A hostile or broken registry does not stop it. A model or version that cannot be mirrored (a field
the database cannot store, anything that raises while converting it) is skipped and reported in
`Applied.skipped` with the reason; the mirror keeps what it had for it, and everything else is
written. A version whose run cannot be read is still mirrored (its stage and aliases are what
reviews and out-of-band detection depend on), without its run's metrics and params, and reported
in the same list marked `partial`. Rows are checked before writing (`registry.storable`); if the
database still refuses the bulk write, it is redone model by model and version by version, each
in a savepoint, and the ones refused are skipped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from .mirror_rows import (
    Unmirrorable,
    alias_map_json,
    aliases_of,
    model_ok,
    record_alias_changes,
    update_version,
    version_row,
)
from .mirror_store import Owner, Skipped, create_models, error_text, write
from .mlflow_client import MlflowModel, MlflowRun, MlflowVersion
from .models import ChangeKind, ModelVersion, RegisteredModel, RegistryChange, Stage, SyncRun
from .signals import changes_observed
from .storable import can_hold, printable

logger = logging.getLogger(__name__)


@dataclass
class Applied:
    models: int
    versions: int
    changes: int
    change_ids: list[int] = field(default_factory=list)
    # {"model": name, "version": number or None, "reason": why it was not mirrored}, and
    # {..., "partial": True} for a version mirrored without its run's metrics and params.
    skipped: list[dict] = field(default_factory=list)


def apply_mlflow_state(
    *,
    models: dict[str, MlflowModel],
    versions: list[MlflowVersion],
    runs: Mapping[str, MlflowRun],
    complete_models: set[str],
    all_models_listed: bool,
    sync_run: SyncRun,
    deleted_models: set[str] = frozenset(),  # type: ignore[assignment]
    unreadable_runs: Mapping[str, str] | None = None,
    watched_since: int | None = None,
) -> Applied:
    """Writes what MLflow said into the mirror in a handful of bulk queries; returns the counts
    and what it had to skip.

    Relies on bulk_create setting primary keys (PostgreSQL, SQLite >= 3.35).

    `complete_models`: models whose every version is in `versions`, so a mirrored version that is
    missing was deleted. `all_models_listed`: `models` is the whole registry, so a mirrored model
    that is missing was deleted. `unreadable_runs`: run ids MLflow could not give, with why; their
    versions are mirrored without run data (what the mirror had is kept) and reported as partial.
    `watched_since`: MLflow milliseconds since which Quorum has watched the whole registry (None:
    not yet); a version created since then that this sync sees for the first time is recorded as
    created in stage None without aliases, as MLflow creates every version, and then moved to
    where it is: its stage and aliases were set while Quorum watched, by someone else than Quorum,
    and are not "already there".

    The phases run in this order, each adding to one `_Diff`, and the changes they record are
    written in the order they were found: a stage change before the alias moves of the same sync.
    """
    diff = _Diff(sync_run)
    listed = set(models)
    models = _create_and_compare_models(diff, models, deleted_models, all_models_listed)
    _mark_deleted_models(diff, listed, deleted_models, all_models_listed)
    _compare_listed_versions(diff, models, versions, runs, complete_models, unreadable_runs or {})
    _move_aliases_of_unlisted_versions(diff, models)
    _mark_deleted_versions(diff, complete_models)
    _copy_model_aliases(diff, models)
    _record_new_versions(diff, watched_since)
    return _write_and_announce(diff, models_listed=len(listed), versions_listed=len(versions))


@dataclass
class _Diff:
    """What one `apply_mlflow_state` found: the rows to write, keyed as the phases look them up,
    the changes to record with them, and what it could not mirror."""

    sync_run: SyncRun
    skipped: Skipped = field(default_factory=Skipped)
    changes: dict[Owner, list[RegistryChange]] = field(default_factory=lambda: defaultdict(list))
    model_rows: dict[str, RegisteredModel] = field(default_factory=dict)
    changed_models: dict[str, RegisteredModel] = field(default_factory=dict)
    # Models whose alias map moved: their versions' aliases are compared even if none is listed.
    alias_moved: set[str] = field(default_factory=set)
    gone_models: set[str] = field(default_factory=set)
    version_rows: dict[tuple[str, int], ModelVersion] = field(default_factory=dict)
    new_versions: list[ModelVersion] = field(default_factory=list)
    changed_versions: dict[int, ModelVersion] = field(default_factory=dict)  # by id(row)
    # Versions MLflow listed (or that belong to a skipped model): not taken for deleted.
    seen: set[tuple[str, int]] = field(default_factory=set)

    def change(self, model_row, version_row, kind, old=None, new=None) -> None:
        owner = (model_row.name, version_row.version if version_row is not None else None)
        self.changes[owner].append(
            RegistryChange(
                model=model_row,
                version=version_row,
                kind=kind,
                old=old,
                new=new,
                sync_run=self.sync_run,
            )
        )


def _create_and_compare_models(
    diff: _Diff,
    models: dict[str, MlflowModel],
    deleted_models: set[str],
    all_models_listed: bool,
) -> dict[str, MlflowModel]:
    """Reads the mirror's rows of these models, inserts the new ones, and copies MLflow's fields
    onto the others; returns the models that are now in the mirror."""
    # A model MLflow describes in a way the mirror cannot store is skipped with its versions;
    # it is still "listed", so it is not taken for deleted.
    models = {name: m for name, m in models.items() if model_ok(name, m, diff.skipped)}
    if all_models_listed:
        diff.model_rows = {m.name: m for m in RegisteredModel.objects.all()}
    else:
        names = {name for name in set(models) | set(deleted_models) if can_hold(name)}
        diff.model_rows = {m.name: m for m in RegisteredModel.objects.filter(name__in=names)}

    new_models = [
        RegisteredModel(
            name=m.name,
            description=m.description,
            tags=m.tags,
            aliases={},  # set by `_copy_model_aliases`, after the alias changes per version
            creation_timestamp=m.creation_timestamp,
            last_updated_timestamp=m.last_updated_timestamp,
        )
        for name, m in models.items()
        if name not in diff.model_rows
    ]
    for row in create_models(new_models, diff.skipped):
        diff.model_rows[row.name] = row
        diff.change(row, None, ChangeKind.MODEL_CREATED)
    models = {name: m for name, m in models.items() if name in diff.model_rows}
    diff.alias_moved = {m.name for m in new_models if m.pk and models[m.name].aliases}
    for name, m in models.items():
        row = diff.model_rows[name]
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
                diff.changed_models[name] = row
        if row.aliases != alias_map_json(m.aliases):
            diff.alias_moved.add(name)
    return models


def _mark_deleted_models(
    diff: _Diff, listed: set[str], deleted_models: set[str], all_models_listed: bool
) -> None:
    """Marks deleted the mirrored models MLflow no longer has, recording each."""
    diff.gone_models = {
        name
        for name, row in diff.model_rows.items()
        if not row.deleted
        and ((all_models_listed and name not in listed) or name in deleted_models)
    }
    for name in diff.gone_models:
        row = diff.model_rows[name]
        row.deleted = True
        diff.changed_models[name] = row
        diff.change(row, None, ChangeKind.MODEL_DELETED)


def _compare_listed_versions(
    diff: _Diff,
    models: dict[str, MlflowModel],
    versions: list[MlflowVersion],
    runs: Mapping[str, MlflowRun],
    complete_models: set[str],
    unreadable_runs: Mapping[str, str],
) -> None:
    """Reads the mirrored versions of every model this sync touches (one query), then turns each
    version MLflow listed into a new row or copies it onto its row, recording each difference."""
    touched = {v.name for v in versions} | complete_models | diff.alias_moved | diff.gone_models
    model_rows = diff.model_rows
    rows_by_id = {row.pk: row for row in model_rows.values()}
    touched_rows = [model_rows[n] for n in touched if n in model_rows and model_rows[n].pk]
    if touched_rows:
        for row in ModelVersion.objects.filter(model__in=touched_rows):
            row.model = rows_by_id[row.model_id]  # the row in memory: no query per version
            diff.version_rows[(row.model.name, row.version)] = row

    skipped_models = diff.skipped.models()
    for v in versions:
        key = (v.name, v.version)
        if v.name in skipped_models:
            diff.seen.add(key)  # neither written nor taken for deleted
            continue
        if v.name not in model_rows:  # listed between the two calls: next sync gets its model
            continue
        diff.seen.add(key)
        if v.run_id in unreadable_runs:
            diff.skipped.add_partial(
                v.name,
                v.version,
                f"mirrored without its run's metrics and params: its run "
                f"{printable(v.run_id, 80)} could not be read: {unreadable_runs[v.run_id]}",
            )
        try:
            fresh = version_row(model_rows[v.name], v, models.get(v.name), runs)
        except Unmirrorable as error:
            diff.skipped.add(v.name, v.version, str(error))
            continue
        except Exception as error:  # whatever MLflow sent that does not convert
            logger.warning("version %s v%s not mirrored", v.name, v.version, exc_info=True)
            diff.skipped.add(v.name, v.version, f"it could not be converted: {error_text(error)}")
            continue
        existing = diff.version_rows.get(key)
        if existing is None:
            diff.new_versions.append(fresh)
            diff.version_rows[key] = fresh
            continue
        run_read = bool(v.run_id) and v.run_id in runs
        if update_version(existing, fresh, run_read, diff.change):
            diff.changed_versions[id(existing)] = existing


def _move_aliases_of_unlisted_versions(diff: _Diff, models: dict[str, MlflowModel]) -> None:
    """Aliases live on the registered model: one moving touches versions nobody listed."""
    for key, row in diff.version_rows.items():
        name, number = key
        if key in diff.seen or row.deleted or name not in diff.alias_moved or name not in models:
            continue
        aliases = aliases_of(models[name], number)
        if aliases != row.aliases:
            record_alias_changes(row, row.aliases, aliases, diff.change)
            row.aliases = aliases
            diff.changed_versions[id(row)] = row


def _mark_deleted_versions(diff: _Diff, complete_models: set[str]) -> None:
    """Marks deleted the mirrored versions missing from a model listed in full, and every version
    of a deleted model, recording each."""
    for key, row in diff.version_rows.items():
        name, _ = key
        if row.deleted or row.pk is None:
            continue
        if (name in complete_models and key not in diff.seen) or name in diff.gone_models:
            row.deleted = True
            diff.changed_versions[id(row)] = row
            diff.change(row.model, row, ChangeKind.VERSION_DELETED, old=row.stage)


def _copy_model_aliases(diff: _Diff, models: dict[str, MlflowModel]) -> None:
    """Stores the alias map of each model whose aliases moved, now that the moves are recorded
    version by version."""
    for name in diff.alias_moved:
        if name in models and name in diff.model_rows:
            diff.model_rows[name].aliases = alias_map_json(models[name].aliases)
            diff.changed_models[name] = diff.model_rows[name]


def _record_new_versions(diff: _Diff, watched_since: int | None) -> None:
    """A version first seen: placed where it is when it predates Quorum's watch ("already
    there"), or created empty and then moved there when it was created since (see
    `apply_mlflow_state`), each move a change of its own that the review app classifies."""
    for row in diff.new_versions:
        created = row.creation_timestamp
        if watched_since is None or (created is not None and created < watched_since):
            placed = {"stage": row.stage, "aliases": row.aliases}
            diff.change(row.model, row, ChangeKind.VERSION_CREATED, new=placed)
            continue
        empty = {"stage": Stage.NONE.value, "aliases": []}
        diff.change(row.model, row, ChangeKind.VERSION_CREATED, new=empty)
        if row.stage != Stage.NONE:
            diff.change(
                row.model, row, ChangeKind.STAGE_CHANGED, old=Stage.NONE.value, new=row.stage
            )
        for alias in row.aliases:
            diff.change(row.model, row, ChangeKind.ALIAS_ADDED, new=alias)


def _write_and_announce(diff: _Diff, *, models_listed: int, versions_listed: int) -> Applied:
    """Writes the rows and their changes, tells the receivers of `changes_observed`, and sums up."""
    created = write(
        list(diff.changed_models.values()),
        diff.new_versions,
        list(diff.changed_versions.values()),
        diff.changes,
        diff.skipped,
    )
    if created:
        # Receivers run in this transaction: their conclusions commit with the mirror or not at all.
        changes_observed.send(sender=RegistryChange, changes=created)
    if diff.skipped.reasons:
        logger.warning("%d models or versions not mirrored", len(diff.skipped.reasons))
    return Applied(
        models=models_listed,
        versions=versions_listed,
        changes=len(created),
        change_ids=[c.pk for c in created if c.pk is not None],
        skipped=diff.skipped.as_json(),
    )
