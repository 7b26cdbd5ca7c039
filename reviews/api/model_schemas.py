"""What the API answers about the registry: registered models, their versions, and who held
each of their stages and aliases when."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from .schemas import Name


class ModelOut(Schema):
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    versions: int = Field(description="Versions that are not deleted.")
    latest_version: int | None


class VersionOut(Schema):
    model: str
    version: int
    stage: str
    aliases: list[str]
    status: str
    run_id: str
    source: str
    description: str
    tags: dict[str, str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    creation_timestamp: int | None = Field(description="MLflow's, in milliseconds.")
    last_updated_timestamp: int | None


class ModelPage(Schema):
    count: int
    items: list[ModelOut]


class VersionPage(Schema):
    count: int
    items: list[VersionOut]


class TimelineIn(Schema):
    target: Name | None = Field(
        None, description="A stage (`Production`) or an alias (`@champion`); default: every target."
    )
    at: datetime | None = Field(
        None,
        description="A time (ISO 8601; UTC when no offset is given): `held_by` then names the "
        "versions that held `target` at that time.",
    )


class HowOut(Schema):
    kind: str = Field(
        description="`promotion`, `rollback`, `break_glass`, `ratification` (a Quorum request), "
        "`out_of_band` (made in MLflow directly), `first_seen` (already there when Quorum "
        "started mirroring) or `unclassified`."
    )
    request: int | None
    requester: str | None
    approvers: list[str]


class HoldingOut(Schema):
    target: str
    version: int
    start: datetime = Field(description="When Quorum's sync saw the version arrive.")
    start_seen: bool = Field(
        description="False: it was already there when first seen; how long before is unknown."
    )
    end: datetime | None = Field(description="When it left; null: it holds the target now.")
    end_reason: Literal["moved", "deleted"] | None
    replaced_by: list[int]
    began: HowOut
    ended_by: HowOut | None


class HoldersTimelineOut(Schema):
    model: str
    mirrored_since: datetime | None = Field(
        description="Quorum's first observation of the model; before it, nothing is known."
    )
    target: str | None
    at: datetime | None
    held_by: list[int] | None = Field(
        description="With `at` and `target`: the versions holding `target` then (empty: none); "
        "null when `at` is before `mirrored_since` (unknown) or no `at` was given."
    )
    holdings: list[HoldingOut]
