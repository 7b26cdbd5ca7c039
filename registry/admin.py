"""The registry in the Django admin: the record of every sync, read-only.

Staff see here why a sync failed and which models or versions it could not mirror, with the
reasons (the models page links here). Mirror rows are written by the sync only, so nothing in the
registry is edited from the admin.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from . import names
from .models import SyncRun


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "kind",
        "model_name",
        "outcome",
        "versions_seen",
        "changes_count",
        "skipped_count",
        "seconds",
    ]
    list_filter = ["kind", ("error", admin.EmptyFieldListFilter)]
    search_fields = ["model_name", "error"]
    date_hierarchy = "started_at"
    exclude = ["skipped"]
    readonly_fields = ["not_mirrored"]

    @admin.display(description="outcome")
    def outcome(self, obj: SyncRun) -> str:
        if obj.finished_at is None:
            return "running (or stopped before it could record an end)"
        if obj.error:
            first = obj.error.strip().splitlines()[0] if obj.error.strip() else obj.error
            return f"failed: {first[:200]}"
        return "succeeded"

    @admin.display(description="not mirrored")
    def not_mirrored(self, obj: SyncRun) -> str:
        if not obj.skipped:
            return "nothing: every model and version it read was mirrored"
        rows = format_html_join(
            "",
            "<li><strong>{}{}</strong>: {}</li>",
            (
                (
                    names.as_text(item.get("model", "")),
                    f" v{item['version']}" if item.get("version") is not None else "",
                    item.get("reason", ""),
                )
                for item in obj.skipped
            ),
        )
        more = obj.skipped_count - len(obj.skipped)
        tail = format_html("<p>and {} more</p>", more) if more > 0 else ""
        return format_html("<ul>{}</ul>{}", rows, tail)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
