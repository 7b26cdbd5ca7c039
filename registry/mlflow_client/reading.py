"""Reading the registry: models, versions and their runs, in as few calls as the pages allow."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from .connection import Connection, MlflowError
from .entities import (
    MetricPoint,
    MlflowModel,
    MlflowVersion,
    Runs,
    metric_value,
    to_model,
    to_run,
    to_version,
)

MODELS_PAGE = 1000  # the server's maximum for search_registered_models
VERSIONS_PAGE = 10_000  # the server's default and a cheap page (≈1.3 s for 10,000 versions)
RECENT_VERSIONS_PAGE = 100  # small pages when walking newest-first: usually one page is enough
RUNS_PER_CALL = 500  # run ids per search_runs filter; keeps the filter string a few kB
# Runs read by two threads: MLflow answers one batch while this process parses another (~20 %
# off reading 20,000 runs from a one-worker server on 2 cores; docs/benchmarks.md).
RUN_READERS = 2


class Reading(Connection):
    """Reads registered models, their versions and the runs behind them."""

    def list_models(self) -> list[MlflowModel]:
        """Every registered model with its aliases, tags and timestamps."""
        models: list[MlflowModel] = []
        token = None
        while True:
            page = self._call(
                self._client.search_registered_models, max_results=MODELS_PAGE, page_token=token
            )
            models.extend(to_model(m) for m in page)
            token = page.token
            if not token:
                return models

    def get_model(self, name: str) -> MlflowModel | None:
        try:
            return to_model(self._call(self._client.get_registered_model, name))
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
            versions.extend(to_version(v) for v in page)
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
                yield to_version(v)
            token = page.token
            if not token:
                return

    def get_version(self, name: str, version: int) -> MlflowVersion | None:
        try:
            return to_version(self._call(self._registry().get_model_version, name, str(version)))
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
                    quote(run_id)
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
        from mlflow.entities import ViewType

        id_list = ", ".join(quote(run_id) for run_id in run_ids)
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
                    runs[run.info.run_id] = to_run(run)
                except (TypeError, ValueError, AttributeError) as error:
                    runs.unreadable[run.info.run_id] = f"its run could not be read: {error}"
            token = page.token
            if not token:
                return

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        history = self._call(self._client.get_metric_history, run_id, key)
        points = [MetricPoint(m.step, metric_value(m.value), m.timestamp) for m in history]
        return sorted(points, key=lambda p: (p.step, p.timestamp))

    def _experiment_ids(self) -> list[str]:
        from mlflow.entities import ViewType

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


def quote(value: str) -> str:
    """A filter-string literal. MLflow's parser has no escapes: use the quote the value lacks."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{value!r} holds both quote characters")


def _name_filter(name: str) -> str:
    try:
        return f"name = {quote(name)}"
    except ValueError:
        # Match the part before the first quote; the caller keeps only exact matches.
        prefix = name[: min(name.index("'"), name.index('"'))]
        return f"name LIKE {quote(prefix + '%')}"
