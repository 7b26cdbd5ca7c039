"""System checks of the review engine, run by `manage.py check` (and every command that checks).

`check_transition_workers` looks at live state, not configuration: approved transitions whose job
has waited past QUORUM_TRANSITION_WAIT_WARNING with no worker consuming their queue. It costs one
query and, only when some transition is queued, a few Redis reads; without a database or Redis to
ask (a fresh checkout, a build step) it has nothing to say.
"""

from django.core.checks import Warning, register
from django.db import DatabaseError

from .stalls import HINT, stalled_requests, summary


@register("quorum")
def check_transition_workers(app_configs, **kwargs):
    try:
        found = stalled_requests()
    except DatabaseError:
        return []
    if not found:
        return []
    return [Warning(summary(found), hint=HINT, id="reviews.W001")]
