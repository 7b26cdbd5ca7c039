"""Reading a version's evidence: its MLmodel file, requirements, datasets, LoggedModel metrics."""

from __future__ import annotations

import json

from .connection import Connection, MlflowError
from .entities import MlflowEvidence, metric_value

# requirements.txt and MLmodel are small; a hostile artifact must not fill the worker's memory.
_ARTIFACT_MAX_CHARS = 1_000_000


class EvidenceReading(Connection):
    """Reads what a version's artifacts and run say besides its metrics."""

    def get_evidence(self, name: str, version: int, run_id: str) -> MlflowEvidence:
        """Reads one version's evidence: its MLmodel file, requirements, run inputs and, for a
        version registered from an MLflow 3 LoggedModel, the metrics logged on it per dataset.

        Each part that cannot be read is named in `problems`; only MLflow being unreachable raises.
        """
        problems: dict[str, str] = {}
        model_id = None
        mlmodel: dict = {}
        requirements: list[str] = []
        try:
            mv = self._call(self._registry().get_model_version, name, str(version))
            model_id = getattr(mv, "model_id", None) or logged_model_id(mv.source or "")
            uri = self._call(self._client.get_model_version_download_uri, name, str(version))
            mlmodel = self._read_artifact_yaml(uri, "MLmodel")
        except MlflowError as error:
            if error.unreachable:
                raise
            problems["model"] = f"the MLmodel file could not be read: {_short(error)}"
        except Exception as error:  # artifact stores raise their own errors (missing file, ...)
            problems["model"] = f"the MLmodel file could not be read: {_short(error)}"
        else:
            try:
                text = self._read_artifact_text(uri, "requirements.txt")
                requirements = sorted(
                    line.strip()
                    for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")
                )
            except Exception as error:
                problems["requirements"] = f"requirements.txt could not be read: {_short(error)}"
        flavors = mlmodel.get("flavors") if isinstance(mlmodel.get("flavors"), dict) else {}
        pyfunc = flavors.get("python_function") if isinstance(flavors, dict) else None
        signature = None
        if "model" not in problems:
            try:
                signature = _signature(mlmodel.get("signature"))
            except ValueError as error:
                problems["signature"] = f"the signature in MLmodel is malformed: {error}"
        datasets: list[dict[str, str]] = []
        if run_id:
            try:
                run = self._call(self._client.get_run, run_id)
                datasets = [_dataset(d) for d in (run.inputs.dataset_inputs or [])]
            except MlflowError as error:
                if error.unreachable:
                    raise
                problems["datasets"] = f"the run's inputs could not be read: {_short(error)}"
        dataset_metrics: dict[str, dict[str, float]] = {}
        if model_id:
            try:
                logged = self._call(self._client.get_logged_model, model_id)
                for metric in logged.metrics or []:
                    if metric.dataset_name:
                        key = f"{metric.dataset_name} ({metric.dataset_digest})"
                        dataset_metrics.setdefault(key, {})[metric.key] = metric_value(metric.value)
            except MlflowError as error:
                if error.unreachable:
                    raise
                problems["logged_model"] = f"the LoggedModel could not be read: {_short(error)}"
        size = mlmodel.get("model_size_bytes")
        python = pyfunc.get("python_version", "") if isinstance(pyfunc, dict) else ""
        return MlflowEvidence(
            signature=signature,
            python_version=str(python),
            requirements=requirements,
            flavors=sorted(str(f) for f in flavors) if isinstance(flavors, dict) else [],
            size_bytes=int(size) if isinstance(size, int) else None,
            datasets=datasets,
            dataset_metrics=dataset_metrics,
            problems=problems,
        )

    def _read_artifact_text(self, uri: str, path: str) -> str:
        import tempfile

        from mlflow.artifacts import download_artifacts

        self.calls += 1
        with tempfile.TemporaryDirectory() as tmp:
            local = download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/{path}",
                dst_path=tmp,
                tracking_uri=self.tracking_uri,
            )
            with open(local, encoding="utf-8") as f:
                return f.read(_ARTIFACT_MAX_CHARS)

    def _read_artifact_yaml(self, uri: str, path: str) -> dict:
        import yaml

        document = yaml.safe_load(self._read_artifact_text(uri, path))
        if not isinstance(document, dict):
            raise ValueError(f"{path} is not a YAML mapping")
        return document


def logged_model_id(source: str) -> str | None:
    """The LoggedModel a version was registered from (`models:/m-<id>`), which the server does
    not always return as the version's `model_id`."""
    if source.startswith("models:/m-") and "/" not in source.removeprefix("models:/"):
        return source.removeprefix("models:/")
    return None


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]


def _columns(spec) -> list[dict]:
    """A schema as MLmodel stores it (a JSON string of column or tensor specs) as plain dicts:
    {"name", "type", "required", "shape"}; a tensor's dtype is its type."""
    if spec in (None, ""):
        return []
    items = json.loads(spec) if isinstance(spec, str) else spec
    if not isinstance(items, list):
        raise ValueError("a schema is not a list of columns")
    columns = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"column {i + 1} is not a mapping")
        tensor = item.get("tensor-spec") if isinstance(item.get("tensor-spec"), dict) else None
        columns.append(
            {
                "name": str(item.get("name", f"#{i + 1}")),
                "type": str(tensor.get("dtype", "tensor") if tensor else item.get("type", "")),
                "required": bool(item.get("required", True)),
                "shape": list(tensor.get("shape", [])) if tensor else None,
            }
        )
    return columns


def _signature(raw) -> dict[str, list[dict]] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("signature is not a mapping")
    try:
        return {part: _columns(raw.get(part)) for part in ("inputs", "outputs", "params")}
    except json.JSONDecodeError as error:
        raise ValueError(str(error)) from None


def _dataset(d) -> dict[str, str]:
    tags = {t.key: t.value for t in (d.tags or [])}
    return {
        "name": d.dataset.name or "",
        "digest": d.dataset.digest or "",
        "source_type": d.dataset.source_type or "",
        "source": (d.dataset.source or "")[:500],
        "context": tags.get("mlflow.data.context", ""),
    }
