"""The locks a move in MLflow is made under (PostgreSQL advisory locks, `infra.locks`): one
execution of a request at a time, and one writer of a model's stages and aliases at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.conf import settings

from infra import locks

# First half of the PostgreSQL advisory lock key an execution holds (the request id is the other).
EXECUTION_LOCK_SPACE = 0x5152  # "QR"
# First half of the key of the lock a model's moves are made under (the model's id is the other).
MODEL_MOVES_LOCK_SPACE = 0x514D  # "QM"


@contextlib.contextmanager
def execution_lock(request_id: int) -> Iterator[None]:
    """One execution of a request at a time, across workers and hosts (PostgreSQL).

    Reading MLflow first makes a second run harmless only once the first has finished; two runs
    that overlap could both read "not there yet" and both transition. The reconciler may re-queue
    a job whose worker merely looks dead (a stalled heartbeat), so the second run waits here
    until the first ends, at most a transition's job timeout (`infra.locks`; nothing on SQLite).
    """
    with locks.advisory_lock(
        EXECUTION_LOCK_SPACE,
        request_id,
        what=f"the execution of request #{request_id}",
        timeout=settings.QUORUM_TRANSITION_TIMEOUT,
    ):
        yield


@contextlib.contextmanager
def model_moves_lock(model_id: int) -> Iterator[None]:
    """One writer of a model's stages and aliases at a time: a transition job reading MLflow and
    moving the version, or a revert of out-of-band moves (`reviews.execution.reverts`) deciding what
    to undo and undoing it. Whichever comes second sees what the first did, waiting at most a
    transition's job timeout (`infra.locks`; nothing on SQLite)."""
    with locks.advisory_lock(
        MODEL_MOVES_LOCK_SPACE,
        model_id,
        what=f"the moves of model #{model_id}",
        timeout=settings.QUORUM_TRANSITION_TIMEOUT,
    ):
        yield


def execution_running(request_id: int) -> bool:
    """Whether a live database session is carrying out this request now."""
    return locks.is_locked(EXECUTION_LOCK_SPACE, request_id)
