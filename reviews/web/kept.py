"""What a person typed into a form on the model page, kept for the one page view that shows the
form again: after a refusal, or after "Back" from a confirmation.

Why the session and a redirect, not a re-render: the model page is the registry's
(`registry.views.model_detail`, with its charts, holders and versions); the review app only fills
its slots and may not build that page itself. So a review view that refuses keeps the values here,
says why with a message and redirects to the page (post/redirect/get, as every refusal on the
site does); the form's template tag takes the values back as it renders. Taken once: a reload
shows a fresh form, and no reload re-sends a refused POST.
"""

from __future__ import annotations

from django.http import HttpRequest

SESSION_PREFIX = "kept-form:"


def keep(request: HttpRequest, form: str, *, model: str, values: dict[str, str]) -> None:
    """Keeps `values` typed into `form` on `model`'s page for the next view of a page."""
    request.session[SESSION_PREFIX + form] = {"model": model, "values": values}


def take(request: HttpRequest | None, form: str, *, model: str) -> dict[str, str] | None:
    """The values kept for `form` on `model`'s page, forgotten as they are read; None when none
    were (or they were typed on another model's page)."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    kept = session.pop(SESSION_PREFIX + form, None)
    if not isinstance(kept, dict) or kept.get("model") != model:
        return None
    return kept["values"]
