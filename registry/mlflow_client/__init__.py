"""The one package that talks to MLflow.

Everything else gets plain dataclasses from here (`entities`), so an MLflow API change touches this
package only and tests can read exactly what crosses the boundary. Every method that makes an HTTP
call counts it in `RegistryClient.calls`: the sync's cost is measured in MLflow calls, and the tests
pin it.

`RegistryClient` is made of one part per concern: reading the registry (`reading`, `evidence`),
a version's model files (`content`), what Quorum changes in it (`writing`), seeding it
(`seeding`), its webhooks (`webhooks`) and probing the server (`probes`), all over one
`connection`.
"""

from .client import RegistryClient
from .connection import MlflowError, load_mlflow
from .entities import (
    ArtifactFile,
    GuardStatus,
    MetricPoint,
    MlflowEvidence,
    MlflowModel,
    MlflowRun,
    MlflowVersion,
    ModelFiles,
    Runs,
)
from .reading import RUN_READERS

__all__ = [
    "RUN_READERS",
    "ArtifactFile",
    "GuardStatus",
    "MetricPoint",
    "MlflowError",
    "MlflowEvidence",
    "MlflowModel",
    "MlflowRun",
    "MlflowVersion",
    "ModelFiles",
    "RegistryClient",
    "Runs",
    "load_mlflow",
]
