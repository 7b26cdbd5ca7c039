"""Template filters for mirror data: model names (marked when they could pass for another),
MLflow timestamps, metric numbers, links into the MLflow UI, and the sync's status line; and the
slots other apps fill on the registry's pages (`registry.slots`).

Load with `{% load registry_extras %}`; the review app's templates use the same filters so a
number or a date reads the same on every page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from django import template
from django.conf import settings
from django.utils.html import format_html_join

from registry import evidence as registry_evidence
from registry import metrics, names, slots
from registry.sync_status import sync_status as registry_sync_status

register = template.Library()


@register.filter
def mlflow_time(milliseconds: int | None) -> datetime | None:
    """An MLflow timestamp (milliseconds since the epoch) as an aware datetime, for `|date`."""
    if milliseconds in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(int(milliseconds) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@register.filter
def metric(value) -> str:
    """A metric value as every page and mail reads it (`registry.metrics.format_value`)."""
    return metrics.format_value(value)


@register.filter
def human_bytes(value) -> str:
    """A model's size on disk for people: "1.2 MB"; "—" when MLflow did not record it."""
    from registry.evidence import human_size

    return human_size(value) if isinstance(value, int) else "—"


@register.filter
def signed(value) -> str:
    """A delta with its sign: +0.0123, −0.0040, ±0 (`registry.metrics.format_change`)."""
    return metrics.format_change(value)


@register.filter
def percent(value) -> str:
    """A relative change: +1.2%, −5.0% (`registry.metrics.format_relative`)."""
    return metrics.format_relative(value)


@register.filter
def mlflow_run_url(version) -> str:
    """The run behind a mirrored version in the MLflow UI, or "" when the mirror lacks its ids."""
    if not getattr(version, "run_id", "") or not getattr(version, "experiment_id", ""):
        return ""
    return (
        f"{settings.MLFLOW_UI_URL}/#/experiments/{quote(version.experiment_id, safe='')}"
        f"/runs/{quote(version.run_id, safe='')}"
    )


@register.inclusion_tag("registry/_sync_status.html", takes_context=True)
def sync_status(context) -> dict:
    """When the mirror last synced with MLflow, and whether the latest sync failed (one query)."""
    return {"status": registry_sync_status(), "user": context.get("user")}


@register.filter
def model_name(name) -> str:
    """A model name for a page: escaped, and marked when invisible characters or look-alike
    letters could make it pass for another name (`registry.names`)."""
    return names.as_html("" if name is None else str(name))


@register.filter
def model_name_text(name) -> str:
    """A model name for plain text (page titles, mail): the same markers, spelled out."""
    return names.as_text("" if name is None else str(name))


@register.simple_tag(takes_context=True)
def slot(context, name: str) -> str:
    """What other apps put in this slot of the page (`registry.slots`), rendered with the page's
    context as `{% include %}` would; nothing when none did."""
    engine = context.template.engine
    with context.push():
        parts = [engine.get_template(t).render(context) for t in slots.templates(name)]
    return format_html_join("", "{}", ((part,) for part in parts))


@register.filter
def signature_rows(evidence) -> list:
    """The evidence table's signature rows (`registry.evidence.signature_rows`): the
    candidate's columns against the holder's, changes first."""
    mine, theirs = evidence.candidate, evidence.baseline
    if mine is None:
        return []
    # Compared only where the comparison is known: not against a holder whose signature could
    # not be read, nor against no holder at all.
    compared = theirs is not None and evidence.signature_changed is not None
    return registry_evidence.signature_rows(theirs.signature if compared else None, mine.signature)
