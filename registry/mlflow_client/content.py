"""Reading a version's model files: where they live, which files there are, and their bytes as
a stream of chunks (`registry.content` hashes them; nothing here holds a whole file).

Where a version's files live: MLflow answers the version's download URI. A `models:/m-…` URI (a
version registered from an MLflow 3 LoggedModel) is that LoggedModel's artifact location. A
`runs:/<run>/<name>` URI is, as MLflow's own `RunsArtifactRepository` reads it, the LoggedModel of
that name the run logged (MLflow 3's `log_model(name=…)`), else the run's artifact directory of
that name (a model logged as plain run artifacts). Anything else (`mlflow-artifacts:/…`, `s3://…`)
is the location itself. Files are listed relative to that location, one call per directory.

Through MLflow's artifact proxy (`mlflow-artifacts:/`, or an http(s) artifact store) a file is one
streamed GET, as MLflow's own download does, without the write to disk; from any other store it is
downloaded by MLflow's artifact repository into a temporary directory and read back in chunks.
"""

from __future__ import annotations

import posixpath
import tempfile
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .connection import Connection, MlflowError, translate
from .entities import ArtifactFile, ModelFiles
from .evidence import logged_model_id
from .reading import quote

if TYPE_CHECKING:
    from mlflow.store.artifact.artifact_repo import ArtifactRepository
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

# Answers that say the server (or a proxy before it) is down or overloaded, not the file bad.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class ContentReading(Connection):
    """Lists a version's model files and streams their bytes."""

    def model_files(self, name: str, version: int, *, max_files: int) -> ModelFiles:
        """Every file under the version's model location; raises `MlflowError` when MLflow
        cannot say (unreachable, unknown location) or lists more than `max_files` files."""
        location = self.model_location(name, version)
        repository = self._repository(location)
        files: list[ArtifactFile] = []
        directories: list[str | None] = [None]
        while directories:
            directory = directories.pop()
            for info in self._call(repository.list_artifacts, directory):
                if info.is_dir:
                    directories.append(info.path)
                    continue
                files.append(ArtifactFile(path=info.path, size=info.file_size))
                if len(files) > max_files:
                    raise MlflowError(f"more than {max_files:,} files under {location}")
        return ModelFiles(location=location, files=tuple(files))

    def model_location(self, name: str, version: int) -> str:
        """The artifact URI under which the version's model files live (see the module)."""
        uri = str(self._call(self._registry().get_model_version_download_uri, name, str(version)))
        if uri.startswith("runs:/"):
            return self._run_model_location(uri)
        if uri.startswith("models:/"):
            model_id = logged_model_id(uri)
            if model_id is None:
                raise MlflowError(f"the model location {uri} names no logged model")
            return str(self._call(self._client.get_logged_model, model_id).artifact_location)
        return uri

    def read_model_file(self, location: str, path: str, *, chunk_size: int) -> Iterator[bytes]:
        """The bytes of the file `path` under `location`, `chunk_size` at most at a time."""
        from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

        repository = self._repository(location)
        if isinstance(repository, HttpArtifactRepository):
            yield from self._stream(repository, path, chunk_size)
        else:
            yield from self._through_file(repository, path, chunk_size)

    def _run_model_location(self, uri: str) -> str:
        from mlflow.exceptions import MlflowException
        from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

        try:
            run_id, path = RunsArtifactRepository.parse_runs_uri(uri)
        except MlflowException as error:
            raise translate(error) from error
        run = self._call(self._client.get_run, run_id)
        if path:
            model_name, _, rest = path.partition("/")
            try:
                wanted = f"source_run_id = {quote(run_id)} AND name = {quote(model_name)}"
            except ValueError:  # a name MLflow's filter cannot express: no LoggedModel by it
                wanted = ""
            if wanted:
                logged = self._call(
                    self._client.search_logged_models,
                    experiment_ids=[str(run.info.experiment_id)],
                    filter_string=wanted,
                )
                if logged:
                    return _joined(str(logged[0].artifact_location), rest)
        return _joined(str(run.info.artifact_uri), path or "")

    def _repository(self, location: str) -> ArtifactRepository:
        from mlflow.exceptions import MlflowException
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            return get_artifact_repository(location, tracking_uri=self.tracking_uri)
        except MlflowException as error:
            raise translate(error) from error

    def _stream(
        self, repository: HttpArtifactRepository, path: str, chunk_size: int
    ) -> Iterator[bytes]:
        from mlflow.utils.rest_utils import http_request

        # What MLflow's `_download_file` requests, read as it arrives instead of written out.
        endpoint = "/" + urllib.parse.quote(path)
        response = self._call(http_request, repository._host_creds, endpoint, "GET", stream=True)
        try:
            if response.status_code != 200:
                raise MlflowError(
                    f"MLflow answered {response.status_code} for {path}: {_message(response)}",
                    unreachable=response.status_code in UNAVAILABLE_STATUSES,
                    not_found=response.status_code == 404,
                )
            yield from response.iter_content(chunk_size=chunk_size)
        except OSError as error:  # the connection broke part way (requests' errors are OSErrors)
            raise MlflowError(
                f"reading {path} from MLflow at {self.tracking_uri} failed: {error}",
                unreachable=True,
            ) from error
        finally:
            response.close()

    def _through_file(
        self, repository: ArtifactRepository, path: str, chunk_size: int
    ) -> Iterator[bytes]:
        with tempfile.TemporaryDirectory(prefix="quorum-content-") as directory:
            local = self._call(repository.download_artifacts, path, directory)
            with open(local, "rb") as f:
                while chunk := f.read(chunk_size):
                    yield chunk


def _message(response) -> str:
    """What an error answer says: MLflow's JSON `message`, else the start of its text."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text.strip())[:300]


def _joined(location: str, path: str) -> str:
    return posixpath.join(location.rstrip("/"), path) if path else location
