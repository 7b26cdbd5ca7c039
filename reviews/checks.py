"""System checks of the review engine, run by `manage.py check` (and every command that checks).

`check_transition_workers` looks at live state, not configuration: approved transitions whose job
has waited past QUORUM_TRANSITION_WAIT_WARNING with no worker consuming their queue. It costs one
query and, only when some transition is queued, a few Redis reads; without a database or Redis to
ask (a fresh checkout, a build step) it has nothing to say.
"""

from django.core.checks import Warning, register
from django.db import DatabaseError

from .execution.stalls import HINT, stalled_requests, summary


@register("quorum")
def check_transition_workers(app_configs, **kwargs):
    try:
        found = stalled_requests()
    except DatabaseError:
        return []
    if not found:
        return []
    return [Warning(summary(found), hint=HINT, id="reviews.W001")]


@register("quorum")
def check_registry_guard(app_configs, **kwargs):
    """Whether the MLflow server Quorum talks to runs quorum-guard and lets Quorum through.

    A live probe with a 3-second timeout and no retries; with no MLflow answering (a build step,
    a fresh checkout) it has nothing to say."""
    from registry.mlflow_client import MlflowError, RegistryClient

    client = RegistryClient()
    try:
        status = client.guard_status()
    except MlflowError as error:
        if error.unreachable:
            return []
        return [Warning(str(error), hint=GUARD_HINT, id="reviews.W004")]
    if status is None:
        return [
            Warning(
                f"MLflow at {client.tracking_uri} is not guarded: anyone with EDIT on a model can "
                "move its protected stages and aliases directly, and Quorum only reports it.",
                hint="Run MLflow with `mlflow server --app-name quorum-guard` "
                "(docs/enforcement.md), or set policies to revert out-of-band moves.",
                id="reviews.W002",
            )
        ]
    if not status.service_identity:
        return [
            Warning(
                f"MLflow at {client.tracking_uri} is guarded by quorum-guard {status.version} "
                f"({status.auth}), but it does not recognise Quorum as its service identity: "
                "Quorum's own transitions of protected targets would be refused.",
                hint=GUARD_HINT,
                id="reviews.W003",
            )
        ]
    return []


GUARD_HINT = (
    "Give Quorum's processes the guard's service identity: MLFLOW_TRACKING_TOKEN equal to the "
    "guard's QUORUM_GUARD_SERVICE_TOKEN, or with QUORUM_GUARD_AUTH=basic-auth, "
    "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD of a user in QUORUM_GUARD_SERVICE_USERS."
)
