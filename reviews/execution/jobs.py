"""The transition job: the RQ entry point that carries out an approved request in MLflow.

Thin on purpose: it names the request in every line logged, takes the request's execution lock
and runs `reviews.execution.executor.carry_out`, recording any exception on the request before RQ
sees it. Its job id is derived from the request (`reviews.decisions.handoff`, which queues it with
`unique=True`), so concurrent enqueues produce one job; a failed attempt is retried with backoff
for QUORUM_TRANSITION_RETRY_WINDOW, then the request is `failed` and its requester and staff are
mailed.

The reconciler (`reviews.execution.reconciler`) finds approved requests whose job is gone and
enqueues them again; it imports this module, never the other way round.
"""

from __future__ import annotations

from structlog.contextvars import bound_contextvars, unbind_contextvars

from ..decisions.handoff import QUEUE as QUEUE  # the transition's queue, its id and its hand-off
from ..decisions.handoff import enqueue_transition as enqueue_transition
from ..decisions.handoff import transition_job_id as transition_job_id
from . import executor
from .locks import execution_lock


def execute_transition(request_id: int) -> str:
    """Carries out one approved request in MLflow; a sync of its model follows as a job of its
    own. Safe to run twice. Any exception is recorded on the request and in the audit trail
    before RQ sees it (and retries it, while retries are left)."""
    # Every line logged while it runs names the request (operations/logs.py); `carry_out` adds the
    # model and version once it has read them.
    with bound_contextvars(transition_request=request_id), execution_lock(request_id):
        try:
            return executor.carry_out(request_id)
        except Exception as error:
            executor.record_error(request_id, error)
            raise
        finally:
            unbind_contextvars("model", "version")
