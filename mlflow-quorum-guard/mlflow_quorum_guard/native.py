"""The content rule for the routes MLflow serves without Flask.

Under uvicorn (MLflow 3's default) the server is a FastAPI app that answers artifact uploads
(`PUT /api/2.0/mlflow-artifacts/artifacts/<path>` and its `/ajax-api` twin) natively, streaming
the body, so Flask's before-request functions never see them. This middleware judges those
uploads as `content.served_write_refusal` does for Flask, before MLflow reads the body. It runs
before basic-auth's own middleware; in basic-auth mode it asks basic-auth who the caller is, and
leaves callers basic-auth would not recognise to basic-auth's 401.
"""

from __future__ import annotations

import logging

from mlflow_quorum_guard.content import served_write_refusal

logger = logging.getLogger("mlflow_quorum_guard")

UPLOAD_ROUTES = (
    "/api/2.0/mlflow-artifacts/artifacts/",
    "/ajax-api/2.0/mlflow-artifacts/artifacts/",
)


def guard_native_routes(asgi_app, guard) -> None:
    from mlflow.server.handlers import _add_static_prefix
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    # MLflow mounts its native artifact router without the static prefix; cover both.
    prefixes = sorted({*UPLOAD_ROUTES, *(_add_static_prefix(p) for p in UPLOAD_ROUTES)})

    @asgi_app.middleware("http")
    async def quorum_guard_uploads(request, call_next):
        if request.method == "PUT":
            path = request.scope.get("path", "")
            for prefix in prefixes:
                if path.startswith(prefix):
                    message = await run_in_threadpool(_judge, guard, request, path[len(prefix) :])
                    if message is not None:
                        body = {"error_code": "PERMISSION_DENIED", "message": message}
                        return JSONResponse(body, status_code=403)
                    break
        return await call_next(request)


def _judge(guard, request, path: str) -> str | None:
    """The refusal's message, or None to let the upload through."""
    if guard.config.wraps_basic_auth:
        from mlflow.server.auth import _authenticate_fastapi_request

        user = _authenticate_fastapi_request(request)
        if user is None or user.username in guard.config.service_users:
            return None  # basic-auth answers the unknown caller; Quorum passes
    elif guard.token_is_service(request.headers.get("authorization", "")):
        return None
    try:
        refusal = served_write_refusal(path, guard.new_holdings())
    except Exception:  # any failure of a lookup: fail closed
        logger.exception("quorum-guard could not read the stores; refusing")
        return "Quorum's guard could not read the registry to check this change."
    return refusal.message if refusal else None
