"""The one module that talks to MLflow.

Everything else gets plain dataclasses from here, so an MLflow API change touches one file and tests
can read exactly what crosses the boundary. Every method that makes an HTTP call counts it in
`RegistryClient.calls`: the sync's cost is measured in MLflow calls, and the tests pin it.

Timeouts and retries come from the MLFLOW_HTTP_REQUEST_* variables that `quorum.settings` sets to
short values, so an MLflow outage fails in seconds instead of the client's default minutes.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .models import Stage
from .targets import ARCHIVING_STAGES

logger = logging.getLogger(__name__)

MODELS_PAGE = 1000  # the server's maximum for search_registered_models
VERSIONS_PAGE = 10_000  # the server's default and a cheap page (≈1.3 s for 10,000 versions)
RECENT_VERSIONS_PAGE = 100  # small pages when walking newest-first: usually one page is enough
RUNS_PER_CALL = 500  # run ids per search_runs filter; keeps the filter string a few kB
# Runs read by two threads: MLflow answers one batch while this process parses another (~20 %
# off reading 20,000 runs from a one-worker server on 2 cores; docs/benchmarks.md).
RUN_READERS = 2
# requirements.txt and MLmodel are small; a hostile artifact must not fill the worker's memory.
_ARTIFACT_MAX_CHARS = 1_000_000
LOG_BATCH_METRICS = 1000  # MLflow's limit on metrics in one log_batch call
# The probe route mlflow-quorum-guard adds; short, because `manage.py check` asks it too.
GUARD_STATUS_ENDPOINT = "/api/2.0/quorum-guard/status"
GUARD_PROBE_TIMEOUT = 3
# MLflow's SQL stores cannot hold infinities and keep ±Inf as the largest finite float instead;
# read back, that is what the run's author logged.
_STORED_INFINITY = sys.float_info.max


class MlflowError(Exception):
    """MLflow answered with an error, or could not be reached at all."""

    def __init__(self, message: str, *, unreachable: bool = False, not_found: bool = False):
        super().__init__(message)
        self.unreachable = unreachable
        self.not_found = not_found


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


@dataclass
class RegistryClient:
    """A thin, call-counting wrapper around `MlflowClient` that speaks in dataclasses."""

    tracking_uri: str | None = None
    calls: int = 0
    _client: MlflowClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tracking_uri is None:
            from django.conf import settings

            self.tracking_uri = settings.MLFLOW_TRACKING_URI
        self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def fork(self) -> RegistryClient:
        """A client of the same server for another thread; add its `calls` back when done."""
        return RegistryClient(self.tracking_uri)

    # -- reading the registry ---------------------------------------------------------------

    def list_models(self) -> list[MlflowModel]:
        """Every registered model with its aliases, tags and timestamps."""
        models: list[MlflowModel] = []
        token = None
        while True:
            page = self._call(
                self._client.search_registered_models, max_results=MODELS_PAGE, page_token=token
            )
            models.extend(_model(m) for m in page)
            token = page.token
            if not token:
                return models

    def get_model(self, name: str) -> MlflowModel | None:
        try:
            return _model(self._call(self._client.get_registered_model, name))
        except MlflowError as error:
            if error.not_found:
                return None
            raise

    def list_versions(self, name: str | None = None) -> list[MlflowVersion]:
        """All versions, or one model's. Aliases are empty here: MLflow's search omits them."""
        filter_string = _name_filter(name) if name is not None else ""
        versions: list[MlflowVersion] = []
        token = None
        while True:
            page = self._call(
                self._client.search_model_versions,
                filter_string=filter_string,
                max_results=VERSIONS_PAGE,
                page_token=token,
            )
            versions.extend(_version(v) for v in page)
            token = page.token
            if not token:
                break
        if name is not None:  # the filter may have been a broader LIKE: see _name_filter
            versions = [v for v in versions if v.name == name]
        return versions

    def iter_versions_newest_first(self) -> Iterator[MlflowVersion]:
        """Versions by `last_updated_timestamp`, newest first, fetched a small page at a time.

        The incremental sync stops reading as soon as it reaches what it has already seen, so a
        quiet registry costs one call whatever its size.
        """
        token = None
        while True:
            page = self._call(
                self._client.search_model_versions,
                max_results=RECENT_VERSIONS_PAGE,
                order_by=["last_updated_timestamp DESC"],
                page_token=token,
            )
            for v in page:
                yield _version(v)
            token = page.token
            if not token:
                return

    def get_version(self, name: str, version: int) -> MlflowVersion | None:
        try:
            return _version(self._call(self._registry().get_model_version, name, str(version)))
        except MlflowError as error:
            if error.not_found:
                return None
            raise

    def get_runs(self, run_ids: Iterable[str], *, readers: int = 1) -> Runs:
        """The runs behind many versions in a few `search_runs` calls, never one call per run;
        with `readers` > 1, the batches are shared among that many threads.

        A run MLflow cannot be asked about, or answers with an error for, is left out and named
        in the result's `unreadable`; only MLflow being unreachable raises.
        """
        wanted = sorted({run_id for run_id in run_ids if run_id})
        if not wanted:
            return Runs()
        experiment_ids = self._experiment_ids()
        chunks = [wanted[i : i + RUNS_PER_CALL] for i in range(0, len(wanted), RUNS_PER_CALL)]
        readers = max(1, min(readers, len(chunks)))
        if readers == 1:
            return self._runs_of(chunks, experiment_ids)
        # This client reads one share (its calls count here); forks read the others.
        forks = [self.fork() for _ in range(readers - 1)]
        shares = [chunks[i::readers] for i in range(readers)]
        runs = Runs()
        try:
            with ThreadPoolExecutor(max_workers=readers) as pool:
                readers_ = [self, *forks]
                for part in pool.map(lambda r, c: r._runs_of(c, experiment_ids), readers_, shares):
                    runs.update(part)
                    runs.unreadable.update(part.unreadable)
        finally:
            self.calls += sum(f.calls for f in forks)
        return runs

    def _runs_of(self, chunks: list[list[str]], experiment_ids: list[str]) -> Runs:
        runs = Runs()
        pending = list(reversed(chunks))
        while pending:
            chunk = pending.pop()
            quotable = []
            for run_id in chunk:
                try:
                    _quote(run_id)
                except ValueError:
                    runs.unreadable[run_id] = (
                        "its run id holds both quote characters, which MLflow's search cannot "
                        "express"
                    )
                else:
                    quotable.append(run_id)
            if not quotable:
                continue
            try:
                self._search_runs(quotable, experiment_ids, runs)
            except MlflowError as error:
                if error.unreachable:
                    raise
                # MLflow refused the batch: halve it until the ids it refuses are found.
                if len(quotable) == 1:
                    runs.unreadable[quotable[0]] = f"MLflow could not read its run: {error}"
                else:
                    middle = len(quotable) // 2
                    pending += [quotable[middle:], quotable[:middle]]
        return runs

    def _search_runs(self, run_ids: list[str], experiment_ids: list[str], runs: Runs) -> None:
        id_list = ", ".join(_quote(run_id) for run_id in run_ids)
        token = None
        while True:
            page = self._call(
                self._client.search_runs,
                experiment_ids=experiment_ids,
                filter_string=f"attributes.run_id IN ({id_list})",
                run_view_type=ViewType.ALL,
                max_results=len(run_ids),
                page_token=token,
            )
            for run in page:
                try:
                    runs[run.info.run_id] = _run(run)
                except (TypeError, ValueError, AttributeError) as error:
                    runs.unreadable[run.info.run_id] = f"its run could not be read: {error}"
            token = page.token
            if not token:
                return

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
            model_id = getattr(mv, "model_id", None) or _logged_model_id(mv.source or "")
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
                        dataset_metrics.setdefault(key, {})[metric.key] = _metric_value(
                            metric.value
                        )
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

    def log_dataset(
        self, run_id: str, *, name: str, frame: Any, context: str, source: str = ""
    ) -> None:
        """Logs a pandas DataFrame as one of the run's inputs (`mlflow.log_input`)."""
        import mlflow
        from mlflow.data.pandas_dataset import from_pandas

        self.calls += 1
        mlflow.set_tracking_uri(self.tracking_uri or "")
        named = {"source": source} if source else {}
        dataset = from_pandas(frame, name=name, **named)
        try:
            with mlflow.start_run(run_id=run_id):
                mlflow.log_input(dataset, context=context)
        except MlflowException as error:
            raise _translate(error) from error

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        history = self._call(self._client.get_metric_history, run_id, key)
        points = [MetricPoint(m.step, _metric_value(m.value), m.timestamp) for m in history]
        return sorted(points, key=lambda p: (p.step, p.timestamp))

    def _experiment_ids(self) -> list[str]:
        ids: list[str] = []
        token = None
        while True:
            page = self._call(
                self._client.search_experiments,
                view_type=ViewType.ALL,
                max_results=1000,
                page_token=token,
            )
            ids.extend(str(e.experiment_id) for e in page)
            token = page.token
            if not token:
                return ids

    # -- changing the registry (transition jobs, seeding, webhook registration) --------------

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
        return _version(result)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._call(self._registry().set_registered_model_alias, name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        self._call(self._client.delete_registered_model_alias, name, alias)

    def create_model(
        self, name: str, *, description: str = "", tags: dict[str, str] | None = None
    ) -> None:
        self._call(self._client.create_registered_model, name, tags=tags, description=description)

    def create_version(
        self,
        name: str,
        *,
        source: str,
        run_id: str | None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> int:
        result = self._call(
            self._client.create_model_version,
            name,
            source,
            run_id=run_id,
            tags=tags,
            description=description,
        )
        return int(result.version)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._call(self._client.set_registered_model_tag, name, key, value)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._call(self._client.set_model_version_tag, name, str(version), key, value)

    def update_version_description(self, name: str, version: int, description: str) -> None:
        self._call(self._client.update_model_version, name, str(version), description=description)

    def delete_version(self, name: str, version: int) -> None:
        self._call(self._client.delete_model_version, name, str(version))

    def delete_model(self, name: str) -> None:
        self._call(self._client.delete_registered_model, name)

    def experiment_id(self, name: str) -> str:
        """The id of the experiment with this name, created when missing."""
        experiment = self._call(self._client.get_experiment_by_name, name)
        if experiment is not None:
            return str(experiment.experiment_id)
        return str(self._call(self._client.create_experiment, name))

    def log_run(
        self,
        experiment_id: str,
        *,
        run_name: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        history: dict[str, list[float]] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """A finished run with params, final metrics and per-step history, in few calls."""
        run = self._call(self._client.create_run, experiment_id, run_name=run_name, tags=tags)
        run_id = run.info.run_id
        timestamp = run.info.start_time
        history = history or {}
        logged = [
            Metric(key, float(value), timestamp + step, step)
            for key, values in history.items()
            for step, value in enumerate(values)
        ]
        # A final value that has no history is logged as a single point at step 0.
        logged.extend(
            Metric(key, float(value), timestamp, 0)
            for key, value in metrics.items()
            if key not in history
        )
        param_list = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, max(len(logged), 1), LOG_BATCH_METRICS):
            self._call(
                self._client.log_batch,
                run_id,
                metrics=logged[start : start + LOG_BATCH_METRICS],
                params=param_list if start == 0 else [],
                tags=[RunTag(k, v) for k, v in (tags or {}).items()] if start == 0 else [],
            )
        self._call(self._client.set_terminated, run_id, "FINISHED")
        return run_id

    def log_sklearn_model(
        self,
        run_id: str,
        estimator: Any,
        *,
        artifact_path: str = "model",
        input_example: Any = None,
        extra_requirements: list[str] | None = None,
    ) -> str:
        """Stores a fitted scikit-learn estimator as the run's model artifact; returns its URI.

        `input_example` (a DataFrame) gives the model a signature; `extra_requirements` are pip
        pins added to the default ones."""
        import mlflow.sklearn

        self.calls += 1
        mlflow.set_tracking_uri(self._client.tracking_uri)
        try:
            with mlflow.start_run(run_id=run_id):
                # Named requirements: inferring them starts a Python process per model (~3 s).
                mlflow.sklearn.log_model(
                    estimator,
                    name=artifact_path,
                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                    pip_requirements=mlflow.sklearn.get_default_pip_requirements(
                        include_cloudpickle=True
                    )
                    + list(extra_requirements or []),
                    input_example=input_example,
                )
        except MlflowException as error:
            raise _translate(error) from error
        return f"runs:/{run_id}/{artifact_path}"

    def create_webhook(self, *, name: str, url: str, events: list[str], secret: str) -> str:
        webhook = self._call(self._client.create_webhook, name, url, events, secret=secret)
        return str(webhook.webhook_id)

    def list_webhooks(self, page_size: int = 1000) -> list[tuple[str, str, str]]:
        """(id, name, url) of every webhook MLflow knows, across all pages.

        1,000 is the largest page MLflow's webhook store accepts."""
        webhooks: list[tuple[str, str, str]] = []
        token = None
        while True:
            page = self._call(self._client.list_webhooks, max_results=page_size, page_token=token)
            webhooks.extend((str(w.webhook_id), w.name, w.url) for w in page)
            token = page.token
            if not token:
                return webhooks

    def delete_webhook(self, webhook_id: str) -> None:
        self._call(self._client.delete_webhook, webhook_id)

    def ping(self) -> None:
        """Raises `MlflowError` unless the tracking server answers."""
        self._call(self._client.search_experiments, max_results=1)

    def guard_status(self) -> GuardStatus | None:
        """Asks the registry's quorum-guard app (mlflow-quorum-guard) about itself, with this
        client's credentials; None when the server has no guard (the route does not exist)."""
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        self.calls += 1
        try:
            response = http_request(
                get_default_host_creds(self.tracking_uri),
                GUARD_STATUS_ENDPOINT,
                "GET",
                max_retries=0,
                timeout=GUARD_PROBE_TIMEOUT,
                raise_on_status=False,
            )
        except MlflowException as error:
            raise _translate(error) from error
        except OSError as error:
            raise MlflowError(
                f"MLflow at {self.tracking_uri} is unreachable: {error}", unreachable=True
            ) from error
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise MlflowError(
                f"MLflow at {self.tracking_uri} refused Quorum's credentials "
                f"({response.status_code}): check MLFLOW_TRACKING_USERNAME/PASSWORD or "
                "MLFLOW_TRACKING_TOKEN"
            )
        try:
            body = response.json()
            return GuardStatus(
                version=str(body["version"]),
                auth=str(body["auth"]),
                service_identity=body["service_identity"] is True,
                default_targets=[str(t) for t in body.get("default_targets", [])],
            )
        except (ValueError, KeyError, TypeError) as error:
            raise MlflowError(
                f"MLflow at {self.tracking_uri} answered the guard probe with "
                f"{response.status_code} and no guard status"
            ) from error

    # -- plumbing ----------------------------------------------------------------------------

    def _registry(self):
        """MLflow's model registry client, which `MlflowClient` wraps. The wrapper first asks
        for the registered model on every version call, to refuse prompts (stored as registered
        models): one more round trip per call, doubling a transition's. The versions Quorum
        reads and moves come from its mirror, which lists registered models, not prompts."""
        return self._client._get_registry_client()

    def _call(self, method, *args, **kwargs):
        self.calls += 1
        try:
            return method(*args, **kwargs)
        except MlflowException as error:
            raise _translate(error) from error
        except OSError as error:  # connection refused, reset, timed out
            raise MlflowError(
                f"MLflow at {self.tracking_uri} is unreachable: {error}", unreachable=True
            ) from error


def _translate(error: MlflowException) -> MlflowError:
    message = str(error)
    unreachable = "Max retries exceeded" in message or "Connection refused" in message
    return MlflowError(
        f"MLflow error: {message}",
        unreachable=unreachable,
        not_found=error.error_code == "RESOURCE_DOES_NOT_EXIST",
    )


def _metric_value(value) -> float:
    """A metric value as logged: NaN and ±Inf included (see `_STORED_INFINITY`)."""
    value = float(value)
    if abs(value) == _STORED_INFINITY:
        return math.copysign(math.inf, value)
    return value


def _quote(value: str) -> str:
    """A filter-string literal. MLflow's parser has no escapes: use the quote the value lacks."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{value!r} holds both quote characters")


def _name_filter(name: str) -> str:
    try:
        return f"name = {_quote(name)}"
    except ValueError:
        # Match the part before the first quote; the caller keeps only exact matches.
        prefix = name[: min(name.index("'"), name.index('"'))]
        return f"name LIKE {_quote(prefix + '%')}"


def _logged_model_id(source: str) -> str | None:
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


def _model(m) -> MlflowModel:
    return MlflowModel(
        name=m.name,
        description=m.description or "",
        tags=dict(m.tags or {}),
        aliases={alias: int(version) for alias, version in (m.aliases or {}).items()},
        creation_timestamp=m.creation_timestamp,
        last_updated_timestamp=m.last_updated_timestamp,
    )


def _run(run) -> MlflowRun:
    return MlflowRun(
        run_id=run.info.run_id,
        experiment_id=str(run.info.experiment_id),
        status=run.info.status,
        metrics={key: _metric_value(value) for key, value in run.data.metrics.items()},
        params=dict(run.data.params),
    )


def _version(v) -> MlflowVersion:
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


__all__ = [
    "MetricPoint",
    "MlflowError",
    "MlflowEvidence",
    "MlflowModel",
    "MlflowRun",
    "MlflowVersion",
    "RegistryClient",
    "Runs",
]
