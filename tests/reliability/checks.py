"""The checks the reliability tests end with: the audit chain holds; and what a refused post must
leave as it was (`state`), which the permission tests compare before and after."""

from __future__ import annotations

from django.apps import apps
from django.core.management import call_command

from reviews.models import AuditEvent, TransitionRequest


def audit_holds() -> None:
    """`manage.py verify_audit` passes: nothing above broke the hash chain."""
    call_command("verify_audit")


def state() -> dict:
    """What a refused post must leave as it was."""
    counts = {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.app_label in {"reviews", "registry", "auth"}
    }
    requests = list(
        TransitionRequest.objects.order_by("pk").values_list("pk", "decision", "execution")
    )
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    preferences = list(
        apps.get_model("reviews", "NotificationPreference").objects.values_list(
            "user_id", "reminders"
        )
    )
    return {"counts": counts, "requests": requests, "audit": head, "prefs": preferences}
