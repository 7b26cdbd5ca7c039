"""One model or version as MLflow describes it, as a mirror row: checked before it is written
(`registry.storable`), and copied onto the row the mirror has, each difference recorded.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import metrics
from .mirror_store import MODEL_STATE, VERSION_STATE, Skipped, error_text
from .mlflow_client import MlflowModel, MlflowRun, MlflowVersion
from .models import ChangeKind, ModelVersion, RegisteredModel
from .storable import problem


class Unmirrorable(Exception):
    """A version the mirror cannot hold as MLflow describes it; the message says why."""


def model_ok(name: str, m: MlflowModel, skipped: Skipped) -> bool:
    """Whether the model as MLflow describes it can be stored; records why not."""
    try:
        state = RegisteredModel(
            name=m.name,
            description=m.description,
            tags=m.tags,
            aliases=alias_map_json(m.aliases),
            creation_timestamp=m.creation_timestamp,
            last_updated_timestamp=m.last_updated_timestamp,
        )
        reason = problem(state, ["name", *MODEL_STATE])
    except Exception as error:  # whatever MLflow sent that does not convert
        reason = f"it could not be converted: {error_text(error)}"
    if reason:
        skipped.add(name, None, reason)
    return not reason


def version_row(
    model_row: RegisteredModel,
    v: MlflowVersion,
    model: MlflowModel | None,
    runs: Mapping[str, MlflowRun],
) -> ModelVersion:
    """The version as MLflow describes it, as a mirror row (unsaved); raises `Unmirrorable`."""
    run = runs.get(v.run_id) if v.run_id else None
    row = ModelVersion(
        model=model_row,
        version=v.version,
        stage=v.stage,
        status=v.status,
        source=v.source,
        run_id=v.run_id,
        description=v.description,
        tags=v.tags,
        aliases=aliases_of(model, v.version),
        creation_timestamp=v.creation_timestamp,
        last_updated_timestamp=v.last_updated_timestamp,
        experiment_id=run.experiment_id if run else "",
        metrics=metrics.encode_all(run.metrics) if run else {},
        params=run.params if run else {},
    )
    reason = problem(row, ["version", *VERSION_STATE])
    if reason:
        raise Unmirrorable(reason)
    return row


# Version fields whose every change is recorded as a RegistryChange of that kind; aliases are
# recorded one alias at a time (`record_alias_changes`).
RECORDED_KINDS = {
    "stage": ChangeKind.STAGE_CHANGED,
    "tags": ChangeKind.TAGS_CHANGED,
    "description": ChangeKind.DESCRIPTION_CHANGED,
}


def update_version(row: ModelVersion, fresh: ModelVersion, run_read: bool, change) -> bool:
    """Copies MLflow's state (`fresh`) onto a mirrored version, recording each difference; True
    if any. Metrics, params and experiment come along only when the run was read (`run_read`)."""
    changed = False
    if row.deleted:
        row.deleted = False
        changed = True
    # In this order: a stage change is recorded before the alias moves of the same sync.
    for attr in ("stage", "aliases", "tags", "description"):
        old, new = getattr(row, attr), getattr(fresh, attr)
        if old == new:
            continue
        if attr == "aliases":
            record_alias_changes(row, old, new, change)
        else:
            change(row.model, row, RECORDED_KINDS[attr], old=old, new=new)
        setattr(row, attr, new)
        changed = True
    if run_read:
        if row.metrics and row.metrics != fresh.metrics:
            change(row.model, row, ChangeKind.METRICS_CHANGED, old=row.metrics, new=fresh.metrics)
        for attr in ("metrics", "params", "experiment_id"):
            if getattr(row, attr) != getattr(fresh, attr):
                setattr(row, attr, getattr(fresh, attr))
                changed = True
    for attr in ("status", "source", "run_id", "creation_timestamp", "last_updated_timestamp"):
        if getattr(row, attr) != getattr(fresh, attr):
            setattr(row, attr, getattr(fresh, attr))
            changed = True
    return changed


def record_alias_changes(row: ModelVersion, old: list[str], new: list[str], change) -> None:
    for alias in sorted(set(old) - set(new)):
        change(row.model, row, ChangeKind.ALIAS_REMOVED, old=alias)
    for alias in sorted(set(new) - set(old)):
        change(row.model, row, ChangeKind.ALIAS_ADDED, new=alias)


def aliases_of(model: MlflowModel | None, version: int) -> list[str]:
    if model is None:
        return []
    return sorted(alias for alias, number in model.aliases.items() if number == version)


def alias_map_json(aliases: dict[str, int]) -> dict[str, int]:
    return dict(sorted(aliases.items()))
