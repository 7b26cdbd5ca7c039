"""The registry as Quorum mirrors it: GET /models, a model's versions, and who held each of its
stages and aliases when (its timeline)."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, TypedDict

from django.db.models import Count, Max, Q
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router

from registry.models import ModelVersion, RegisteredModel

from ..errors import UnknownModel
from ..insight.holder_history import holder_history
from ..policies.spec import parse_target
from .model_schemas import HoldersTimelineOut, ModelPage, TimelineIn, VersionPage
from .representation import paginate
from .schemas import LOOKUP_ERRORS, READ_ERRORS, Error, Name, PageIn

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

router = Router()


class VersionCounts(TypedDict):
    """What `list_models` annotates each model with."""

    version_count: int
    latest: int | None


def model_out(model: WithAnnotations[RegisteredModel, VersionCounts]) -> dict:
    return {
        "name": model.name,
        "description": model.description,
        "tags": model.tags,
        "aliases": model.aliases,
        "versions": model.version_count,
        "latest_version": model.latest,
    }


def version_out(model: RegisteredModel, version: ModelVersion) -> dict:
    return {
        "model": model.name,
        "version": version.version,
        "stage": version.stage,
        "aliases": version.aliases,
        "status": version.status,
        "run_id": version.run_id,
        "source": version.source,
        "description": version.description,
        "tags": version.tags,
        "metrics": version.metrics,
        "params": version.params,
        "creation_timestamp": version.creation_timestamp,
        "last_updated_timestamp": version.last_updated_timestamp,
    }


@router.get("/models", response={200: ModelPage, READ_ERRORS: Error}, tags=["registry"])
def list_models(request: HttpRequest, page: Query[PageIn]):
    """Registered models in the mirror, by name."""
    live = Q(versions__deleted=False)
    models = (
        RegisteredModel.objects.live()
        .annotate(
            version_count=Count("versions", filter=live),
            latest=Max("versions__version", filter=live),
        )
        .order_by("name")  # explicit: pages must not shuffle
    )
    return paginate(models, page, lambda rows: [model_out(m) for m in rows])


@router.get(
    "/models/{name}/versions",
    response={200: VersionPage, LOOKUP_ERRORS: Error},
    tags=["registry"],
)
def list_versions(request: HttpRequest, name: Name, page: Query[PageIn]):
    """A model's versions, newest first: stage, aliases, run metrics and params."""
    model = RegisteredModel.objects.live().filter(name=name).first()
    if model is None:
        raise UnknownModel(f"There is no registered model named {name!r}.")
    versions = ModelVersion.objects.live().filter(model=model).order_by("-version")
    return paginate(versions, page, lambda rows: [version_out(model, v) for v in rows])


@router.get(
    "/models/{name}/timeline",
    response={200: HoldersTimelineOut, LOOKUP_ERRORS | {422}: Error},
    tags=["registry"],
)
def model_timeline(request: HttpRequest, name: Name, query: Query[TimelineIn]):
    """Who held each stage and alias of the model from when to when, and how each holding began,
    from the mirror's recorded changes. With `target` and `at`: what held `target` at time `at`
    (`held_by`; null when `at` is before Quorum started mirroring the model: unknown)."""
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise UnknownModel(f"There is no registered model named {name!r}.")
    target = None
    if query.target is not None:
        target = str(parse_target(query.target))
    at = query.at
    if at is not None and timezone.is_naive(at):
        at = timezone.make_aware(at, UTC)
    history = holder_history(model)
    entries = history.of(target) if target else history.entries
    return {
        "model": model.name,
        "mirrored_since": history.timeline.mirrored_since,
        "target": target,
        "at": at,
        "held_by": history.held_at(target, at) if target and at else None,
        "holdings": [entry.as_json() for entry in entries],
    }
