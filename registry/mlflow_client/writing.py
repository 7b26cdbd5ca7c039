"""What Quorum itself changes in MLflow: stages, aliases, and the tags it writes (the approval
proof on a version, the protected targets on a model)."""

from __future__ import annotations

import warnings

from ..targets import ARCHIVING_STAGES
from .connection import Connection
from .entities import MlflowVersion, to_version


class Writing(Connection):
    """Moves stages and aliases, and writes the tags Quorum keeps in MLflow."""

    def transition_stage(
        self, name: str, version: int, stage: str, *, archive_existing: bool = False
    ) -> MlflowVersion:
        # MLflow answers 500 to archive_existing_versions with any stage but those.
        archive = archive_existing and stage in ARCHIVING_STAGES
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated, still served
            result = self._call(
                self._registry().transition_model_version_stage,
                name,
                str(version),
                stage,
                archive_existing_versions=archive,
            )
        return to_version(result)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._call(self._registry().set_registered_model_alias, name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        self._call(self._client.delete_registered_model_alias, name, alias)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._call(self._client.set_registered_model_tag, name, key, value)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._call(self._registry().set_model_version_tag, name, str(version), key, value)

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        self._call(self._client.delete_model_version_tag, name, str(version), key)
