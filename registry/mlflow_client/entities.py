"""The plain dataclasses that cross the boundary, and how MLflow's entities become them."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from ..models import Stage

# MLflow's SQL stores cannot hold infinities and keep ±Inf as the largest finite float instead;
# read back, that is what the run's author logged.
_STORED_INFINITY = sys.float_info.max


@dataclass(frozen=True)
class MlflowModel:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]  # alias -> version
    creation_timestamp: int | None
    last_updated_timestamp: int | None


@dataclass(frozen=True)
class MlflowVersion:
    name: str
    version: int
    stage: str
    status: str
    source: str
    run_id: str
    description: str
    tags: dict[str, str]
    aliases: tuple[str, ...]
    creation_timestamp: int | None
    last_updated_timestamp: int | None


@dataclass(frozen=True)
class MlflowRun:
    run_id: str
    experiment_id: str
    status: str
    metrics: dict[str, float]
    params: dict[str, str]


class Runs(dict[str, MlflowRun]):
    """Runs by id, as `RegistryClient.get_runs` read them; `unreadable` names the ids it could
    not read, each with the reason."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.unreadable: dict[str, str] = {}


@dataclass(frozen=True)
class MlflowEvidence:
    """What a version's artifacts and run say besides metrics: its schema, environment and data.

    `problems` names each part MLflow could not give, with the reason: a part that could not be
    read is unknown, never empty.
    """

    signature: dict[str, list[dict]] | None  # {"inputs": [...], "outputs": [...], "params": [...]}
    python_version: str
    requirements: list[str]
    flavors: list[str]
    size_bytes: int | None
    # [{"name", "digest", "source_type", "source", "context"}, ...] as the run logged them
    datasets: list[dict[str, str]]
    # {"dataset name (digest)": {metric: value}} from an MLflow 3 LoggedModel; {} when none
    dataset_metrics: dict[str, dict[str, float]]
    problems: dict[str, str]


@dataclass(frozen=True)
class ArtifactFile:
    """A file under a model's artifact location: its path relative to it, and the size MLflow
    lists (None when the store does not say)."""

    path: str
    size: int | None


@dataclass(frozen=True)
class ModelFiles:
    """Every file of a version's model, as MLflow lists them under `location` (the artifact URI
    its files are read from)."""

    location: str
    files: tuple[ArtifactFile, ...]


@dataclass(frozen=True)
class GuardStatus:
    """What the registry's quorum-guard app says about itself and about this client."""

    version: str
    auth: str  # "token" or "basic-auth"
    service_identity: bool  # whether it recognises this client as Quorum
    default_targets: list[str]


@dataclass(frozen=True)
class MetricPoint:
    step: int
    value: float
    timestamp: int


def metric_value(value) -> float:
    """A metric value as logged: NaN and ±Inf included (see `_STORED_INFINITY`)."""
    value = float(value)
    if abs(value) == _STORED_INFINITY:
        return math.copysign(math.inf, value)
    return value


def to_model(m) -> MlflowModel:
    return MlflowModel(
        name=m.name,
        description=m.description or "",
        tags=dict(m.tags or {}),
        aliases={alias: int(version) for alias, version in (m.aliases or {}).items()},
        creation_timestamp=m.creation_timestamp,
        last_updated_timestamp=m.last_updated_timestamp,
    )


def to_run(run) -> MlflowRun:
    return MlflowRun(
        run_id=run.info.run_id,
        experiment_id=str(run.info.experiment_id),
        status=run.info.status,
        metrics={key: metric_value(value) for key, value in run.data.metrics.items()},
        params=dict(run.data.params),
    )


def to_version(v) -> MlflowVersion:
    return MlflowVersion(
        name=v.name,
        version=int(v.version),
        stage=v.current_stage or Stage.NONE.value,
        status=v.status or "",
        source=v.source or "",
        run_id=v.run_id or "",
        description=v.description or "",
        tags=dict(v.tags or {}),
        aliases=tuple(v.aliases or ()),
        creation_timestamp=v.creation_timestamp,
        last_updated_timestamp=v.last_updated_timestamp,
    )
