"""Storing the mirror's rows: in bulk, or, when the database refuses the bulk, model by model
and version by version, each with its changes in a savepoint, skipping (and saying) the ones it
refuses. `Skipped` collects what one sync could not mirror, with why.
"""

from __future__ import annotations

import logging

from django.db import transaction

from .models import ModelVersion, RegisteredModel, RegistryChange
from .storable import printable

logger = logging.getLogger(__name__)

WRITE_BATCH = 500

# (model name, version number or None for the model itself)
Owner = tuple[str, int | None]


class Skipped:
    """What this sync could not mirror, each with why (first reason wins)."""

    def __init__(self) -> None:
        self.reasons: dict[Owner, str] = {}
        # Versions mirrored without their run: not skipped, but said with the rest.
        self.partial: dict[Owner, str] = {}

    def add(self, name: str, version: int | None, reason: str) -> None:
        self.reasons.setdefault((name, version), reason)

    def add_partial(self, name: str, version: int, reason: str) -> None:
        self.partial.setdefault((name, version), reason)

    def models(self) -> set[str]:
        return {name for name, version in self.reasons if version is None}

    def __contains__(self, owner: Owner) -> bool:
        return owner in self.reasons or (owner[0], None) in self.reasons

    def as_json(self) -> list[dict]:
        partial = {key: reason for key, reason in self.partial.items() if key not in self}
        return [
            {"model": printable(name, 300), "version": version, "reason": printable(reason)}
            for (name, version), reason in self.reasons.items()
        ] + [
            {
                "model": printable(name, 300),
                "version": version,
                "reason": printable(reason),
                "partial": True,
            }
            for (name, version), reason in partial.items()
        ]


# What MLflow says of a version or model, as the mirror stores it: checked before writing
# (`registry.storable`), then written with `deleted`.
VERSION_STATE = [
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
]
VERSION_FIELDS = [*VERSION_STATE, "deleted"]
MODEL_STATE = [
    "description",
    "tags",
    "aliases",
    "creation_timestamp",
    "last_updated_timestamp",
]
MODEL_FIELDS = [*MODEL_STATE, "deleted"]


def create_models(rows: list[RegisteredModel], skipped: Skipped) -> list[RegisteredModel]:
    """Inserts new models in bulk, or one by one if the database refuses the bulk; returns the
    rows it stored."""
    if not rows:
        return []
    try:
        with transaction.atomic():
            RegisteredModel.objects.bulk_create(rows, batch_size=WRITE_BATCH)
        return rows
    except Exception as error:  # the database refused something the checks let through
        logger.warning("creating models in bulk failed (%s); one by one", error_text(error))
    stored = []
    for row in rows:
        row.pk = None
        row._state.adding = True
        try:
            with transaction.atomic():
                row.save(force_insert=True)
        except Exception as error:
            skipped.add(row.name, None, f"the database refused it: {error_text(error)}")
        else:
            stored.append(row)
    return stored


def write(
    changed_models: list[RegisteredModel],
    new_versions: list[ModelVersion],
    changed_versions: list[ModelVersion],
    changes: dict[Owner, list[RegistryChange]],
    skipped: Skipped,
) -> list[RegistryChange]:
    """Writes the rows and their changes in bulk; if the database refuses, model by model and
    version by version (each with its changes, in a savepoint), skipping the ones it refuses."""
    try:
        with transaction.atomic():
            return _write_bulk(changed_models, new_versions, changed_versions, changes)
    except Exception as error:  # the database refused something the checks let through
        logger.warning("writing the mirror in bulk failed (%s); row by row", error_text(error))
    for row in new_versions:  # the rolled-back insert left its ids behind
        row.pk = None
        row._state.adding = True
    created: list[RegistryChange] = []
    for model_row in changed_models:
        owned = changes.get((model_row.name, None), [])
        if _save_unit(model_row, MODEL_FIELDS, owned, skipped, (model_row.name, None)):
            created += owned
    for row in [*new_versions, *changed_versions]:
        owner = (row.model.name, row.version)
        if owner in skipped:  # its model was refused
            continue
        owned = changes.get(owner, [])
        if _save_unit(row, VERSION_FIELDS, owned, skipped, owner):
            created += owned
    # Model-level changes of models that needed no update (a model created above).
    written = {row.name for row in changed_models}
    for (name, version), owned in changes.items():
        if version is None and name not in written and (name, None) not in skipped:
            created += RegistryChange.objects.bulk_create(owned)
    return created


def _write_bulk(
    changed_models: list[RegisteredModel],
    new_versions: list[ModelVersion],
    changed_versions: list[ModelVersion],
    changes: dict[Owner, list[RegistryChange]],
) -> list[RegistryChange]:
    ModelVersion.objects.bulk_create(new_versions, batch_size=WRITE_BATCH)
    if changed_versions:
        ModelVersion.objects.bulk_update(changed_versions, VERSION_FIELDS, batch_size=WRITE_BATCH)
    if changed_models:
        RegisteredModel.objects.bulk_update(changed_models, MODEL_FIELDS, batch_size=WRITE_BATCH)
    return RegistryChange.objects.bulk_create(
        [c for owned in changes.values() for c in owned], batch_size=WRITE_BATCH
    )


def _save_unit(
    row, fields: list[str], owned: list[RegistryChange], skipped: Skipped, owner: Owner
) -> bool:
    """Saves one row with its changes in a savepoint; records it skipped if the database refuses."""
    was_new = row.pk is None
    try:
        with transaction.atomic():
            if was_new:
                row.save(force_insert=True)
            else:
                row.save(update_fields=fields)
            RegistryChange.objects.bulk_create(owned)
    except Exception as error:
        if was_new:  # rolled back: the id it got does not exist
            row.pk = None
            row._state.adding = True
        skipped.add(*owner, f"the database refused it: {error_text(error)}")
        return False
    return True


def error_text(error: Exception) -> str:
    return printable(f"{type(error).__name__}: {error}".strip().splitlines()[0])
