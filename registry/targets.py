"""Where a transition takes a version: an MLflow stage, or an alias written "@champion".

A target is stored and shown as text (a request's `target`, a policy's `targets`); `Target.parse`
reads that text once and is the only place that knows the "@" spelling. Everything that asks
"is this an alias", "does this version hold it", "which MLflow call moves a version there" or
"does MLflow archive the stage's other versions" asks the parsed value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .models import Stage

if TYPE_CHECKING:
    from collections.abc import Collection

    from .mlflow_client import MlflowVersion, RegistryClient

ALIAS_PREFIX = "@"
STAGES = [choice.value for choice in Stage]
# MLflow's alias rule: letters, digits, _ and -; "latest" and "v<number>" are reserved (MLflow
# resolves them itself).
ALIAS_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
RESERVED_ALIASES = re.compile(r"latest|v\d+", re.IGNORECASE)
# MLflow archives the versions already in the stage (archive_existing_versions) only for these;
# for any other stage its server answers 500.
ARCHIVING_STAGES = frozenset({Stage.STAGING, Stage.PRODUCTION})
# Nothing "holds" these the way a version holds Production or an alias: there is no champion a
# candidate replaces, so no baseline to compare it with.
HOLDERLESS_STAGES = frozenset({Stage.NONE, Stage.ARCHIVED})


class NotATarget(ValueError):
    """The text is neither a stage nor an @alias MLflow accepts; the message says so.

    The review engine turns it into its refusal, `reviews.errors.InvalidTarget`, in one place
    (`reviews.policies.spec.parse_target`).
    """


class Placed(Protocol):
    """Anything that says which version is where: a mirrored `ModelVersion`, an `MlflowVersion`."""

    @property
    def version(self) -> int: ...

    @property
    def stage(self) -> str: ...

    @property
    def aliases(self) -> Collection[str]: ...


@dataclass(frozen=True)
class Target:
    """A stage (`stage` set, `alias` empty) or an alias (`alias` set, `stage` None)."""

    stage: Stage | None = None
    alias: str = ""

    @classmethod
    def parse(cls, text: str) -> Target:
        """The target `text` names: "Production", "Staging", "Archived", "None" (stages, spelt as
        MLflow spells them) or "@name" (an alias). Anything else raises `NotATarget`."""
        if text in STAGES:
            return cls(stage=Stage(text))
        if isinstance(text, str) and text.startswith(ALIAS_PREFIX):
            alias = text[len(ALIAS_PREFIX) :]
            if ALIAS_RE.fullmatch(alias) and not RESERVED_ALIASES.fullmatch(alias):
                return cls(alias=alias)
        raise NotATarget(f"{text!r} is not a stage ({', '.join(STAGES)}) or an @alias")

    def __str__(self) -> str:
        return f"{ALIAS_PREFIX}{self.alias}" if self.is_alias else str(self.stage)

    @property
    def is_alias(self) -> bool:
        return bool(self.alias)

    @property
    def archive_existing_applies(self) -> bool:
        """Whether moving a version here can archive the versions already in the stage."""
        return self.stage in ARCHIVING_STAGES

    @property
    def has_holder(self) -> bool:
        """Whether a version can hold this target as the one a candidate would replace: an
        alias, Staging or Production; not None or Archived."""
        return self.stage not in HOLDERLESS_STAGES

    def is_held_by(self, version: Placed) -> bool:
        """Whether `version` (as the mirror or MLflow shows it) is at this target."""
        if self.is_alias:
            return self.alias in version.aliases
        return version.stage == self.stage

    def move(
        self, client: RegistryClient, name: str, version: int, *, archive_existing: bool = False
    ) -> MlflowVersion | None:
        """Moves `version` of model `name` here in MLflow: sets the alias, or transitions the
        stage (archiving the stage's other versions when asked and MLflow can). Returns the
        version as MLflow answered a stage move; None for an alias (MLflow answers nothing)."""
        if self.is_alias:
            client.set_alias(name, self.alias, version)
            return None
        return client.transition_stage(
            name,
            version,
            str(self.stage),
            archive_existing=archive_existing and self.archive_existing_applies,
        )
