"""The checks the reliability tests end with: the audit chain holds, and what a request's
transition attempts left in it."""

from __future__ import annotations

from django.core.management import call_command


def audit_holds() -> None:
    """`manage.py verify_audit` passes: nothing above broke the hash chain (item 6)."""
    call_command("verify_audit")


def transition_actions(request) -> list[str]:
    """The request's `transition.*` audit events, in order."""
    from reviews.models import AuditEvent

    events = AuditEvent.objects.filter(request=request, action__startswith="transition.")
    return list(events.order_by("sequence").values_list("action", flat=True))
