"""What identity appends to the audit chain (accounts created or refused, group membership and
staff taken from the provider), without importing the review engine that keeps the chain.

The engine registers its recorder when Django starts (`reviews.apps`); identity calls `record`
inside the transaction of the change it describes, so an event exists exactly when the change
was committed. With no recorder registered, `record` refuses rather than let a change go
unaudited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

Recorder = Callable[..., Any]
_recorder: Recorder | None = None


def set_recorder(recorder: Recorder) -> None:
    """Called once by the app that keeps the audit chain: `recorder(action, actor=, details=)`."""
    global _recorder
    _recorder = recorder


def record(action: str, *, actor: str, details: dict) -> None:
    if _recorder is None:
        raise ImproperlyConfigured(
            "identity has no audit recorder: the reviews app registers it when Django starts "
            "(INSTALLED_APPS must list 'reviews')"
        )
    _recorder(action, actor=actor, details=details)
