"""Structured logs: with QUORUM_LOG_FORMAT=json every line Quorum (and Django, RQ, gunicorn's
error log) writes is one JSON object: `time`, `level`, `logger`, `message`, the web request's
`request_id`, the signed-in `user`, and what the line is about where the code handling it says
so (`transition_request`, `model`, `version`, `job_id`, ...).

The context lives in structlog's context variables, so the code that logs keeps using the
standard `logging.getLogger(__name__)`; the code that handles a request, a model or a version
binds it (`structlog.contextvars.bound_contextvars`). `RequestIdMiddleware` binds the request id
(X-Request-ID from the client or the proxy when it is a sane token, else a new one) and returns
it in the response; `infra.queues.enqueue_once` copies it into each job's meta, and the worker
binds it again around the job (`job_context`), so a request's lines and its jobs' lines share it.

Nothing here imports Django's models: the settings' LOGGING names `JsonFormatter`, which is
built before the apps are.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog
from structlog.contextvars import bound_contextvars

from infra.queues import CARRIED_LOG_CONTEXT

# What a client or proxy may pass as X-Request-ID: a token, not text for the log to carry.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")
RESPONSE_HEADER = "X-Request-ID"

_current_request: ContextVar[Any] = ContextVar("quorum_current_request", default=None)


def request_id_from(header: str | None) -> str:
    """The client's request id when it is a sane token, else a new one."""
    if header and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def add_user(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    """The current web request's signed-in user, if the request already looked them up: a log
    line never costs a query of its own (or fails for want of one)."""
    request = _current_request.get()
    if request is None or "user" in event:
        return event
    user = getattr(request, "user", None)
    user = getattr(user, "_wrapped", user)  # Django's lazy user, when it has been evaluated
    if user is not None and getattr(user, "is_authenticated", False) is True:
        event["user"] = user.get_username()
    return event


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """One JSON object per record, for the handlers of LOGGING (QUORUM_LOG_FORMAT=json)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.EventRenamer("message"),
                structlog.processors.JSONRenderer(default=str),
            ],
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                add_user,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
                structlog.processors.format_exc_info,
            ],
        )


class RequestIdMiddleware:
    """Binds the request id (and the request, for `add_user`) while a request is handled, and
    returns the id in X-Request-ID."""

    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        token = _current_request.set(request)
        try:
            with bound_contextvars(request_id=request_id, path=request.path):
                response = self.get_response(request)
        finally:
            _current_request.reset(token)
        response[RESPONSE_HEADER] = request_id
        return response


@contextmanager
def job_context(job: Any, queue_name: str) -> Iterator[None]:
    """The log context of a job: what its web request carried, its id and queue."""
    carried = {key: job.meta[key] for key in CARRIED_LOG_CONTEXT if key in (job.meta or {})}
    with bound_contextvars(**carried, job_id=job.id, queue=queue_name):
        yield
