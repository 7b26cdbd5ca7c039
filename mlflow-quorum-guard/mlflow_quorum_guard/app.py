"""The `quorum-guard` MLflow server app: MLflow's own server with one more rule before each request.

The rule: a request that would move a protected target (a transition into or out of a protected
stage, setting or deleting a protected alias, deleting a version or model that holds one, renaming
a model that holds one) or write a `quorum.*` tag is refused with MLflow's own error shape
(PERMISSION_DENIED, 403) unless it comes from Quorum's service identity. Everything else passes
through untouched.

The routes come from MLflow's own list of model-registry endpoints (`/api/2.0/...` for clients and
`/ajax-api/2.0/...` for the UI, with the static prefix when one is set), so every path MLflow serves
for these calls is guarded. Requests are read with MLflow's own parser, so the guard judges exactly
the request MLflow would carry out.

A second rule (`content.py`) keeps what a held version is made of still: its files, its run and
its run's metrics and params, and Quorum's own webhook.

With QUORUM_GUARD_AUTH=basic-auth the guard is installed on top of MLflow's basic-auth app: its
check runs after basic-auth's login and permission checks, so a user needs MLflow's EDIT permission
and, for a protected target, must be Quorum.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable

from flask import Flask, Response, g, jsonify, request
from mlflow.entities.model_registry.model_version_stages import get_canonical_stage
from mlflow.exceptions import MlflowException
from mlflow.protos import model_registry_pb2 as registry_pb2
from mlflow.protos.model_registry_pb2 import ModelRegistryService

from mlflow_quorum_guard import VERSION
from mlflow_quorum_guard.config import GuardConfig, GuardConfigError, private_lock_dir
from mlflow_quorum_guard.content import content_route_checks
from mlflow_quorum_guard.holds import Holdings
from mlflow_quorum_guard.native import guard_native_routes
from mlflow_quorum_guard.protection import Protection, is_reserved_tag, protection_of
from mlflow_quorum_guard.refusal import Refusal

logger = logging.getLogger("mlflow_quorum_guard")

STATUS_PATH = "/2.0/quorum-guard/status"
_UNREADABLE = "Quorum's guard could not read the registry to check this change."


Check = Callable[[object, "Guard"], Refusal | None]


def create_app():
    """The app factory `mlflow server --app-name quorum-guard` loads (entry point `mlflow.app`)."""
    from mlflow.server import app as flask_app

    config = GuardConfig.from_env()
    private_lock_dir(config.lock_dir)  # refuses to start with a directory others can write
    if config.wraps_basic_auth:
        from mlflow.server.auth import create_app as basic_auth_app

        # basic-auth registers its login and permission check first; Flask runs before-request
        # functions in order, so the guard's rule only ever sees users MLflow let through.
        served = basic_auth_app(flask_app)
    else:
        served = _served(flask_app)
    guard = Guard(config)
    guard.install(flask_app)
    if served is not flask_app:
        # Under uvicorn MLflow serves artifact uploads itself, never reaching Flask.
        guard_native_routes(served, guard)
    logger.info("quorum-guard %s active (%s)", VERSION, config.auth)
    return served


def _served(flask_app: Flask):
    """What `mlflow server` would serve without an app: the FastAPI wrapper under uvicorn."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME

    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(flask_app)
    return flask_app


class Guard:
    def __init__(self, config: GuardConfig):
        self.config = config
        self.checks = _route_checks()
        self.content_checks = content_route_checks()

    def install(self, flask_app: Flask) -> None:
        from mlflow.server.handlers import _add_static_prefix

        for prefix in ("/api", "/ajax-api"):
            path = _add_static_prefix(prefix + STATUS_PATH)
            flask_app.add_url_rule(
                path,
                endpoint=f"quorum_guard_status{prefix.replace('/', '_').replace('-', '_')}",
                view_func=self.status,
                methods=["GET"],
            )
            if self.config.wraps_basic_auth:
                from mlflow.server.auth import BEFORE_REQUEST_VALIDATORS

                # basic-auth refuses routes it has no rule for; the probe tells any logged-in
                # user no more than the guard's version and whether they are Quorum.
                BEFORE_REQUEST_VALIDATORS[(path, "GET")] = _any_logged_in_user
        flask_app.before_request(self.before_request)
        flask_app.teardown_request(self.release_lock)

    # -- identity ------------------------------------------------------------------------------

    def caller_is_service(self) -> bool:
        if self.config.wraps_basic_auth:
            # Set by basic-auth's own before-request check once the password is verified.
            return getattr(g, "mlflow_authenticated_user", None) in self.config.service_users
        return self.token_is_service(request.headers.get("Authorization", ""))

    def token_is_service(self, header: str) -> bool:
        """Whether an Authorization header carries Quorum's bearer token (token mode)."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return hmac.compare_digest(token.strip().encode(), self.config.service_token.encode())

    # -- the rule ------------------------------------------------------------------------------

    def before_request(self):
        rule = request.url_rule
        key = (rule.rule, request.method) if rule is not None else None
        check = self.checks.get(key) if key is not None else None
        if check is None:
            content = self.content_checks.get(key) if key is not None else None
            return self.judge_content(*content) if content is not None else None
        request_class, judge = check
        try:
            from mlflow.server.handlers import _get_request_message

            message = _get_request_message(request_class())
        except MlflowException as error:
            return _error(error.error_code, error.message, error.get_http_status_code())
        name = getattr(message, "name", "")
        if name:
            # Quorum's own changes take the lock too: a user's check that passed must not be
            # overtaken by Quorum moving the version into a protected stage before the user's
            # change runs.
            try:
                self.lock_model(name)
            except GuardConfigError as error:
                # The directory changed hands or mode since the start: no lock, no change.
                logger.error("quorum-guard cannot lock %r; refusing: %s", name, error)
                return _refuse(
                    "Quorum's guard cannot lock the model to check this change: its lock "
                    "directory is not safe to use (the MLflow server's log says why)."
                )
        if self.caller_is_service():
            return None
        try:
            refusal = judge(message, self)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None  # MLflow's handler gives its own "not found"
            logger.exception("quorum-guard could not read the registry; refusing")
            return _refuse(_UNREADABLE)
        return _refuse(refusal.message) if refusal else None

    def judge_content(self, request_class: type | None, judge: Check):
        """The content rule (`content.py`): no model lock, as these calls name no model; the
        body is read only for calls whose body is a message, never for an upload's file."""
        if self.caller_is_service():
            return None
        message = None
        if request_class is not None:
            from mlflow.server.handlers import _get_request_message

            try:
                message = _get_request_message(request_class())
            except MlflowException as error:
                return _error(error.error_code, error.message, error.get_http_status_code())
        try:
            refusal = judge(message, self)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None  # what the request names does not exist: MLflow's handler says so
            logger.exception("quorum-guard could not read the stores; refusing")
            return _refuse(_UNREADABLE)
        except Exception:  # any other failure of a lookup: fail closed
            logger.exception("quorum-guard could not read the stores; refusing")
            return _refuse(_UNREADABLE)
        return _refuse(refusal.message) if refusal else None

    def holdings(self) -> Holdings:
        """What Quorum holds, looked up for this request and kept until it ends."""
        if "quorum_guard_holdings" not in g:
            g.quorum_guard_holdings = self.new_holdings()
        return g.quorum_guard_holdings

    def new_holdings(self) -> Holdings:
        from mlflow.server.constants import ARTIFACTS_DESTINATION_ENV_VAR
        from mlflow.server.handlers import _get_tracking_store

        return Holdings(
            registry=_store(),
            tracking=_get_tracking_store(),
            default_targets=self.config.default_targets,
            request_url=self.config.request_url,
            destination=os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR, ""),
        )

    def protection(self, name: str) -> Protection:
        model = _store().get_registered_model(name)
        return protection_of(
            model.tags,
            default_targets=self.config.default_targets,
            default_request_url=self.config.request_url,
        )

    def status(self):
        """A harmless probe: Quorum asks it whether the registry is guarded and by whom."""
        return jsonify(
            guard="quorum-guard",
            version=VERSION,
            auth=self.config.auth,
            service_identity=self.caller_is_service(),
            default_targets=list(self.config.default_targets),
        )

    # -- serialising the check with the change it allows ------------------------------------

    def lock_model(self, name: str) -> None:
        """Hold a per-model lock until the request ends: a check and the change it allows happen
        before any other guarded change to the model is checked, in any worker of this host.
        The directory is checked each time (a temporary directory's cleaner may remove it, or
        someone change it); raises `GuardConfigError` when it is not the server user's alone."""
        lock_dir = private_lock_dir(self.config.lock_dir)
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        handle = open(lock_dir / f"{digest}.lock", "a+b")
        fcntl.flock(handle, fcntl.LOCK_EX)
        g.quorum_guard_lock = handle

    def release_lock(self, _error=None) -> None:
        handle = g.pop("quorum_guard_lock", None)
        if handle is not None:
            handle.close()  # closing the file releases the lock


def _any_logged_in_user() -> bool:
    return True


# -- judging one request --------------------------------------------------------------------


def _refusal(
    guard: Guard, protection: Protection, name: str, what: str, version: object = None
) -> Refusal:
    page = protection.page_for(version)
    where = f" Request a promotion in Quorum: {page}" if page else " Request a promotion in Quorum."
    return Refusal(f"{what} of registered model '{name}' is protected by Quorum.{where}")


def _transition(message, guard: Guard) -> Refusal | None:
    version = _store().get_model_version(message.name, message.version)
    protection = guard.protection(message.name)
    target = get_canonical_stage(message.stage)
    for stage in (target, version.current_stage):
        if protection.covers_stage(stage):
            return _refusal(guard, protection, message.name, f"Stage {stage}", message.version)
    return None


def _alias(message, guard: Guard) -> Refusal | None:
    protection = guard.protection(message.name)
    if protection.covers_alias(message.alias):
        version = getattr(message, "version", None)  # setting an alias names one; deleting, none
        return _refusal(guard, protection, message.name, f"Alias @{message.alias}", version)
    return None


def _delete_version(message, guard: Guard) -> Refusal | None:
    version = _store().get_model_version(message.name, message.version)
    protection = guard.protection(message.name)
    held = protection.held_targets(stages=[version.current_stage], aliases=version.aliases)
    if held:
        what = f"Version {message.version}, which holds {', '.join(held)},"
        return _refusal(guard, protection, message.name, what, message.version)
    return None


def _model_holding(message, guard: Guard, verb: str) -> Refusal | None:
    protection = guard.protection(message.name)
    model = _store().get_registered_model(message.name)
    stages = [
        v.current_stage
        for v in _store().get_latest_versions(message.name)
        if protection.covers_stage(v.current_stage)
    ]
    held = protection.held_targets(stages=stages, aliases=model.aliases)
    if held:
        return _refusal(guard, protection, message.name, f"{verb} ({', '.join(held)})")
    return None


def _delete_model(message, guard: Guard) -> Refusal | None:
    return _model_holding(message, guard, "Deleting the model")


def _rename_model(message, guard: Guard) -> Refusal | None:
    return _model_holding(message, guard, "Renaming the model")


def _tag(message, guard: Guard) -> Refusal | None:
    if is_reserved_tag(message.key):
        return Refusal(f"Tag {message.key!r} is written only by Quorum.")
    return None


def _created_tags(message, guard: Guard) -> Refusal | None:
    for tag in message.tags:
        if is_reserved_tag(tag.key):
            return Refusal(f"Tag {tag.key!r} is written only by Quorum.")
    return None


_JUDGES: dict[type, Check] = {
    registry_pb2.TransitionModelVersionStage: _transition,
    registry_pb2.SetRegisteredModelAlias: _alias,
    registry_pb2.DeleteRegisteredModelAlias: _alias,
    registry_pb2.DeleteModelVersion: _delete_version,
    registry_pb2.DeleteRegisteredModel: _delete_model,
    registry_pb2.RenameRegisteredModel: _rename_model,
    registry_pb2.SetRegisteredModelTag: _tag,
    registry_pb2.DeleteRegisteredModelTag: _tag,
    registry_pb2.SetModelVersionTag: _tag,
    registry_pb2.DeleteModelVersionTag: _tag,
    registry_pb2.CreateRegisteredModel: _created_tags,
    registry_pb2.CreateModelVersion: _created_tags,
}


def _route_checks() -> dict[tuple[str, str], tuple[type, Check]]:
    """(Flask rule, method) → (request class, judge), for every path MLflow serves each call on."""
    from mlflow.server.handlers import get_service_endpoints

    checks = {}
    for path, request_class, methods in get_service_endpoints(
        ModelRegistryService, lambda request_class: request_class
    ):
        judge = _JUDGES.get(request_class)
        if judge is not None:
            for method in methods:
                checks[(path, method)] = (request_class, judge)
    return checks


def _store():
    from mlflow.server.handlers import _get_model_registry_store

    return _get_model_registry_store()


def _error(code: str, message: str, status: int) -> Response:
    return Response(
        json.dumps({"error_code": code, "message": message}),
        status=status,
        mimetype="application/json",
    )


def _refuse(message: str) -> Response:
    return _error("PERMISSION_DENIED", message, 403)
