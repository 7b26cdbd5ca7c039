"""Creating what a registry holds, for the demo, the tests and the benchmarks: models, versions,
runs with their metrics, logged models and datasets; and deleting them again."""

from __future__ import annotations

from typing import Any

from .connection import Connection, MlflowError, translate

LOG_BATCH_METRICS = 1000  # MLflow's limit on metrics in one log_batch call


class Seeding(Connection):
    """Creates and deletes models, versions, runs and their artifacts."""

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
        try:
            return str(self._call(self._client.create_experiment, name))
        except MlflowError as error:
            if not error.already_exists:
                raise
        # Another process created it between the two calls (seeding in parallel).
        return str(self._call(self._client.get_experiment_by_name, name).experiment_id)

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
        from mlflow.entities import Metric, Param, RunTag

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

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Stores `text` as the run's artifact `artifact_file` (a small model file in tests)."""
        self._call(self._client.log_text, run_id, text, artifact_file)

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
        from mlflow.exceptions import MlflowException

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
            raise translate(error) from error
        return f"runs:/{run_id}/{artifact_path}"

    def log_dataset(
        self, run_id: str, *, name: str, frame: Any, context: str, source: str = ""
    ) -> None:
        """Logs a pandas DataFrame as one of the run's inputs (`mlflow.log_input`)."""
        import mlflow
        from mlflow.data.pandas_dataset import from_pandas
        from mlflow.exceptions import MlflowException

        self.calls += 1
        mlflow.set_tracking_uri(self.tracking_uri or "")
        named = {"source": source} if source else {}
        dataset = from_pandas(frame, name=name, **named)
        try:
            with mlflow.start_run(run_id=run_id):
                mlflow.log_input(dataset, context=context)
        except MlflowException as error:
            raise translate(error) from error
