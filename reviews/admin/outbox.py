"""The outbox in the admin: every mail and webhook delivery, what became of it, and why.

Rows are written by the review engine and read-only here. A delivery that used up its attempts
("gave up": a mail server or a receiver that stayed down) can be put back in line with the
"Send again" action once the cause is fixed; the periodic sweep then sends it.
"""

from __future__ import annotations

from django.contrib import admin, messages

from ..models import Notification, OutboxItem, WebhookDelivery
from ..notify import outbox
from .records import ReadOnlyAdmin


class OutboxAdmin(ReadOnlyAdmin):
    list_filter = ["state", "created_at"]
    date_hierarchy = "created_at"
    actions = ["send_again"]

    @admin.display(description="event", ordering="event__sequence")
    def event_action(self, item: OutboxItem) -> str:
        return f"#{item.event.sequence} {item.event.action}"

    @admin.display(description="last error")
    def error(self, item: OutboxItem) -> str:
        return item.last_error[:120]

    def has_send_permission(self, request) -> bool:
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Send again (deliveries that gave up)", permissions=["send"])
    def send_again(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        moved = outbox.send_again(self.model, ids, actor=request.user)
        if moved:
            self.message_user(
                request,
                f"{len(moved)} put back in line; the next outbox sweep sends "
                f"{'it' if len(moved) == 1 else 'them'}.",
                messages.SUCCESS,
            )
        left = len(ids) - len(moved)
        if left:
            self.message_user(
                request,
                f"{left} left as {'it was' if left == 1 else 'they were'}: only deliveries that "
                "gave up can be sent again.",
                messages.WARNING,
            )


@admin.register(Notification)
class NotificationAdmin(OutboxAdmin):
    list_display = [
        "id",
        "kind",
        "recipient",
        "event_action",
        "state",
        "attempts",
        "created_at",
        "finished_at",
        "error",
    ]
    list_filter = ["state", "kind", "created_at"]
    list_select_related = ["recipient", "event"]
    search_fields = ["recipient__username", "recipient__email", "event__model_name"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OutboxAdmin):
    list_display = [
        "id",
        "url",
        "event_action",
        "state",
        "response_status",
        "attempts",
        "created_at",
        "finished_at",
        "error",
    ]
    list_select_related = ["event"]
    search_fields = ["url", "event__model_name"]
