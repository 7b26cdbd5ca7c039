"""The second rule: what a held version is made of stays still, and so does Quorum's webhook.

Without Quorum's service identity a request is refused when it would

- write or delete artifacts inside a held version's content (the `mlflow-artifacts` routes, the
  UI's upload route, multipart and presigned uploads), or delete a directory that contains it;
- delete or restore the run a held version was made from, or delete its experiment;
- delete, finalize or log params on the logged model a held version was registered from;
- log metrics or params to such a run (`QUORUM_GUARD_PROTECT_RUN_DATA`, on by default);
- change or delete Quorum's own MLflow webhook (`QUORUM_GUARD_WEBHOOK_NAME`/`_URL`).

"Held" is `holds.Holdings.why_held`: a protected target, a proof, or an open request. Run tags
stay free (they are no gate's input); so do artifacts of versions nothing holds.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from flask import request
from mlflow.protos import service_pb2 as tracking_pb2
from mlflow.protos.mlflow_artifacts_pb2 import (
    CompleteMultipartUpload,
    CreateMultipartUpload,
    DeleteArtifact,
    MlflowArtifactsService,
    UploadArtifact,
)
from mlflow.protos.service_pb2 import MlflowService
from mlflow.protos.webhooks_pb2 import DeleteWebhook, UpdateWebhook, WebhookService

from mlflow_quorum_guard.holds import Held, Holdings, Location, location_of
from mlflow_quorum_guard.refusal import Refusal

UI_UPLOAD_PATH = "/ajax-api/2.0/mlflow/upload-artifact"


def _refusal(held: list[Held], what: str, keeps: str):
    which = "; ".join(h.describe() for h in held[:3])
    more = f" (and {len(held) - 3} more)" if len(held) > 3 else ""
    return Refusal(f"{what} would change {which}{more}: Quorum keeps {keeps} still.")


# -- artifacts -------------------------------------------------------------------------------------


def _served_path() -> str:
    return posixpath.normpath("/" + (request.view_args or {}).get("artifact_path", "")).strip("/")


def _above_runs(path: str) -> bool:
    """A directory above any run's or logged model's own (the root, an experiment's, its
    `models`): too many versions under it to look up in one request."""
    parts = path.split("/") if path else []
    return len(parts) < 2 or (len(parts) == 2 and parts[1] == "models")


def _artifact_write(message: Any, guard):
    path = _served_path()
    # Multipart uploads name the directory in the URL and the file in the body.
    if file_name := (message.path if message is not None else ""):
        path = posixpath.join(path, posixpath.basename(file_name))
    return served_write_refusal(path, guard.holdings())


def served_write_refusal(path: str, holdings: Holdings) -> Refusal | None:
    """A write of `path` under the server's artifact root (also from `native.py`, for the upload
    route MLflow serves without Flask)."""
    path = posixpath.normpath("/" + path).strip("/")
    held = holdings.held_at(Location("served", path), deleting=False)
    if held:
        return _refusal(held, f"Writing artifact '{path}'", "the content of a held version")
    return None


def _artifact_delete(message, guard):
    path = _served_path()
    if _above_runs(path):
        return Refusal(
            f"Deleting artifact directory '{path or '/'}' at once is refused by Quorum's guard: "
            "it may hold versions Quorum keeps still. Delete a run's or a logged model's "
            "artifacts instead."
        )
    return _judge_location(guard, Location("served", path), f"Deleting '{path}'", deleting=True)


def _judge_location(guard, where: Location, what: str, *, deleting=False, runs=()):
    held = guard.holdings().held_at(where, deleting=deleting, runs=runs)
    return _refusal(held, what, "the content of a held version") if held else None


def _run_upload(guard, run_id: str, path: str, what: str):
    from mlflow.server.handlers import _get_tracking_store

    run = _get_tracking_store().get_run(run_id)
    where = location_of(
        posixpath.join(run.info.artifact_uri, path), destination=guard.holdings().destination
    )
    if where is None:
        return None
    return _judge_location(guard, where, what, runs=[run_id])


def _ui_upload(message, guard):
    run_id, path = request.args.get("run_uuid", ""), request.args.get("path", "")
    if not run_id or not path:
        return None  # MLflow's handler says what is missing
    return _run_upload(guard, run_id, path, f"Uploading '{path}' to run {run_id}")


def _presigned_upload(message, guard):
    if message.run_id:
        what = f"An upload URL for '{message.path}' in run {message.run_id}"
        return _run_upload(guard, message.run_id, message.path, what)
    if message.model_id:
        from mlflow.server.handlers import _get_tracking_store

        logged = _get_tracking_store().get_logged_model(message.model_id)
        base = logged.artifact_location
        where = location_of(
            posixpath.join(base, message.path), destination=guard.holdings().destination
        )
        if where is None:
            return None
        what = f"An upload URL for '{message.path}' in logged model {message.model_id}"
        return _judge_location(guard, where, what, runs=[logged.source_run_id])
    return None


# -- runs, experiments, logged models -------------------------------------------------------------


def _run_of(message) -> str:
    return getattr(message, "run_id", "") or getattr(message, "run_uuid", "")


def _run_change(verb: str) -> Callable:
    def judge(message, guard):
        run_id = _run_of(message)
        held = guard.holdings().held_for_runs([run_id]) if run_id else []
        return _refusal(held, f"{verb} run {run_id}", "the run behind it") if held else None

    return judge


def _run_data(message, guard):
    if not guard.config.protect_run_data:
        return None
    run_id = _run_of(message)
    held = guard.holdings().held_for_runs([run_id]) if run_id else []
    if held:
        what = f"Logging metrics or params to run {run_id}"
        return _refusal(held, what, "the metrics and params of the run behind it")
    return None


def _delete_experiment(message, guard):
    from mlflow.entities import ViewType
    from mlflow.server.handlers import _get_tracking_store

    store, token, run_ids = _get_tracking_store(), None, []
    while True:
        page = store.search_runs(
            [message.experiment_id], "", ViewType.ALL, max_results=1000, page_token=token
        )
        run_ids += [run.info.run_id for run in page]
        token = page.token
        if not token:
            break
    held = guard.holdings().held_for_runs(run_ids)
    what = f"Deleting experiment {message.experiment_id}"
    return _refusal(held, what, "the runs behind them") if held else None


def _logged_model_change(verb: str, *, run_data: bool = False) -> Callable:
    def judge(message, guard):
        if run_data and not guard.config.protect_run_data:
            return None
        model_id = (request.view_args or {}).get("model_id", "")
        held = guard.holdings().held_for_logged_model(model_id)
        return _refusal(held, f"{verb} logged model {model_id}", "it") if held else None

    return judge


# -- Quorum's webhook --------------------------------------------------------------------------


def _webhook(message, guard):
    from mlflow.server.handlers import _get_model_registry_store

    webhook_id = (request.view_args or {}).get("webhook_id", "")
    webhook = _get_model_registry_store().get_webhook(webhook_id)
    config = guard.config
    if webhook.name == config.webhook_name or (
        config.webhook_url and webhook.url == config.webhook_url
    ):
        return Refusal(
            f"Webhook '{webhook.name}' ({webhook_id}) is Quorum's own, which tells Quorum of "
            "registry changes: only Quorum may change or delete it."
        )
    return None


# -- the route table -----------------------------------------------------------------------------

# request class → (judge, whether the body is read with MLflow's parser: never for uploads, whose
# body is the file, nor for routes whose only argument is in the URL).
_JUDGES: dict[type, tuple[Callable, bool]] = {
    UploadArtifact: (_artifact_write, False),
    DeleteArtifact: (_artifact_delete, False),
    CreateMultipartUpload: (_artifact_write, True),
    CompleteMultipartUpload: (_artifact_write, True),
    tracking_pb2.CreatePresignedUploadUrl: (_presigned_upload, True),
    tracking_pb2.DeleteRun: (_run_change("Deleting"), True),
    tracking_pb2.RestoreRun: (_run_change("Restoring"), True),
    tracking_pb2.LogMetric: (_run_data, True),
    tracking_pb2.LogParam: (_run_data, True),
    tracking_pb2.LogBatch: (_run_data, True),
    tracking_pb2.DeleteExperiment: (_delete_experiment, True),
    tracking_pb2.DeleteLoggedModel: (_logged_model_change("Deleting"), False),
    tracking_pb2.FinalizeLoggedModel: (_logged_model_change("Finalizing"), False),
    tracking_pb2.LogLoggedModelParamsRequest: (
        _logged_model_change("Logging params to", run_data=True),
        False,
    ),
    UpdateWebhook: (_webhook, False),
    DeleteWebhook: (_webhook, False),
}


def content_route_checks() -> dict[tuple[str, str], tuple[type | None, Callable]]:
    """(Flask rule, method) → (request class to parse, or None; judge), for every path MLflow
    serves these calls on, and the UI's upload route, which is in no service's list."""
    from mlflow.server.handlers import _add_static_prefix, get_service_endpoints

    checks: dict[tuple[str, str], tuple[type | None, Callable]] = {}
    for service in (MlflowService, MlflowArtifactsService, WebhookService):
        for path, request_class, methods in get_service_endpoints(service, lambda cls: cls):
            if request_class in _JUDGES:
                judge, parse = _JUDGES[request_class]
                for method in methods:
                    checks[(path, method)] = (request_class if parse else None, judge)
    checks[(_add_static_prefix(UI_UPLOAD_PATH), "POST")] = (None, _ui_upload)
    return checks
