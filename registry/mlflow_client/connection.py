"""The connection every part of the client shares: one `MlflowClient`, the count of calls made
through it, and MLflow's errors turned into `MlflowError`.

Timeouts and retries come from the MLFLOW_HTTP_REQUEST_* variables that `quorum.settings` sets to
short values, so an MLflow outage fails in seconds instead of the client's default minutes.

MLflow itself is imported when a client first calls it, not when this package is imported: loading
it costs about 2 s of CPU, half of a `manage.py` command's start, and `migrate`, `check` with no
MLflow answering, `collectstatic` and most pages never call it. The modules of this package import
what they use of MLflow inside the functions that use it.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

# Before every request MLflow's client asks whether it runs inside Databricks (a notebook, a job,
# a cluster) by importing these; where they are not installed each import fails, and a failed
# import searches every directory on sys.path again, every time: about a dozen searches an HTTP
# call, a sixth of a transition job's own CPU (docs/benchmarks.md, burst). Known absent once,
# they fail at once. Only modules missing when this module is imported are marked (finding
# them imports nothing, MLflow included): one installed afterwards is seen after a restart.
DATABRICKS_PROBES = ("dbruntime", "IPython", "pyspark")


def _mark_absent(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]  # Python's "known absent"


_mark_absent(DATABRICKS_PROBES)


class MlflowError(Exception):
    """MLflow answered with an error, or could not be reached at all."""

    def __init__(
        self,
        message: str,
        *,
        unreachable: bool = False,
        not_found: bool = False,
        already_exists: bool = False,
    ):
        super().__init__(message)
        self.unreachable = unreachable
        self.not_found = not_found
        self.already_exists = already_exists


@dataclass
class Connection:
    """A server's `MlflowClient`, and `calls`: every HTTP call made through it, counted."""

    tracking_uri: str | None = None
    calls: int = 0
    _mlflow_client: MlflowClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tracking_uri is None:
            from django.conf import settings

            self.tracking_uri = settings.MLFLOW_TRACKING_URI

    @property
    def _client(self) -> MlflowClient:
        """MLflow's own client of this server, made (and MLflow imported) at the first call."""
        if self._mlflow_client is None:
            from mlflow.tracking import MlflowClient

            self._mlflow_client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._mlflow_client

    def fork(self) -> Self:
        """A client of the same server for another thread; add its `calls` back when done."""
        return type(self)(self.tracking_uri)

    def _registry(self):
        """MLflow's model registry client, which `MlflowClient` wraps. The wrapper first asks
        for the registered model on every version call, to refuse prompts (stored as registered
        models): one more round trip per call, doubling a transition's. The versions Quorum
        reads and moves come from its mirror, which lists registered models, not prompts."""
        return self._client._get_registry_client()

    def _call(self, method, *args, **kwargs):
        from mlflow.exceptions import MlflowException  # imported already: `method` is MLflow's

        self.calls += 1
        try:
            return method(*args, **kwargs)
        except MlflowException as error:
            raise translate(error) from error
        except OSError as error:  # connection refused, reset, timed out
            raise MlflowError(
                f"MLflow at {self.tracking_uri} is unreachable: {error}", unreachable=True
            ) from error


def load_mlflow() -> None:
    """Imports the parts of MLflow the client uses now rather than at its first call: a worker
    does it once before it forks work horses, which then start with MLflow loaded instead of each
    importing it again."""
    import mlflow.entities
    import mlflow.store.artifact.artifact_repository_registry
    import mlflow.store.artifact.http_artifact_repo
    import mlflow.store.artifact.runs_artifact_repo
    import mlflow.tracking
    import mlflow.utils.rest_utils  # noqa: F401


def translate(error: MlflowException) -> MlflowError:
    message = str(error)
    unreachable = "Max retries exceeded" in message or "Connection refused" in message
    return MlflowError(
        f"MLflow error: {message}",
        unreachable=unreachable,
        not_found=error.error_code == "RESOURCE_DOES_NOT_EXIST",
        already_exists=error.error_code == "RESOURCE_ALREADY_EXISTS",
    )
