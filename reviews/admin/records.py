"""What the review engine writes, shown read-only: requests, votes, the audit trail, reverts of
out-of-band moves, API tokens.

Requests change only through `reviews.decisions` (the admin actions call it, and it audits); tokens
are issued by `manage.py create_api_token` and only revoked here.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse

from ..api.auth import token_revoke
from ..audit import verification
from ..decisions import deciding
from ..errors import QuorumError
from ..execution import proof_keys
from ..execution.stalls import HINT, request_stall, stalled_requests, summary
from ..models import ApiToken, AuditEvent, OutOfBandRevert, TransitionRequest, Vote

# -- requests, votes, audit --------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by staff with the view permission; written only by the review engine."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TransitionRequest)
class TransitionRequestAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "model_name",
        "version_number",
        "target",
        "requester",
        "decision",
        "execution",
        "attestation",
        "created_at",
        "expires_at",
    ]
    list_filter = ["decision", "execution", "attestation", "version__model__name"]
    list_select_related = ["version__model", "requester"]
    search_fields = ["version__model__name", "requester__username"]
    date_hierarchy = "created_at"
    actions = ["retry_failed", "cancel_pending"]

    @admin.display(description="model", ordering="version__model__name")
    def model_name(self, obj):
        return obj.version.model.name

    @admin.display(description="version", ordering="version__version")
    def version_number(self, obj):
        return obj.version.version

    def changelist_view(self, request, extra_context=None):
        if found := stalled_requests():
            self.message_user(request, f"{summary(found)} {HINT}", messages.WARNING)
        extra_context = {**(extra_context or {}), "keys_url": reverse("api-v1:list_keys")}
        try:
            extra_context["signing_keys"] = proof_keys.published_keys()
        except proof_keys.SigningKeyError as error:
            extra_context["signing_keys_error"] = str(error)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and (stall := request_stall(obj)):
            self.message_user(request, stall.message, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def has_transition_permission(self, request):
        # The change permission allows acting on requests through the services, never editing.
        return request.user.has_perm("reviews.change_transitionrequest")

    @admin.action(description="Retry failed execution", permissions=["transition"])
    def retry_failed(self, request, queryset):
        self._each(request, queryset, deciding.transition_retry, "Re-queued")

    @admin.action(description="Cancel pending request", permissions=["transition"])
    def cancel_pending(self, request, queryset):
        self._each(request, queryset, deciding.request_cancel, "Cancelled")

    def _each(self, request, queryset, action, done_label: str) -> None:
        """Runs a service per request, each in its own transaction: one refusal stops no other."""
        done = []
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                action(request_id=pk, user=request.user)
            except QuorumError as error:
                self.message_user(request, f"#{pk}: {error}", messages.ERROR)
            else:
                done.append(f"#{pk}")
        if done:
            self.message_user(request, f"{done_label} {', '.join(done)}.", messages.SUCCESS)


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = ["id", "request", "user", "decision", "stale", "created_at"]
    list_filter = ["decision", "stale"]
    list_select_related = ["request__version__model", "user"]
    search_fields = ["user__username", "request__version__model__name"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "created_at", "actor", "action", "model_name", "version"]
    list_filter = ["action"]
    search_fields = ["actor", "model_name"]

    def changelist_view(self, request, extra_context=None):
        # The same bounded check as the audit page: the checkpoint, and the events after it.
        extra_context = {**(extra_context or {}), "audit_verification": verification.chain_status()}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(OutOfBandRevert)
class OutOfBandRevertAdmin(ReadOnlyAdmin):
    """Quorum undoing moves made in MLflow directly (`out_of_band: revert`,
    reviews/execution/reverts.py)."""

    list_display = ["id", "model", "state", "attempts", "created_at", "finished_at"]
    list_filter = ["state"]
    list_select_related = ["model"]
    search_fields = ["model__name"]
    readonly_fields = ["changes", "caused_changes"]


# -- API tokens ----------------------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are issued by `manage.py create_api_token` (the secret is shown only there) and
    revoked here; revoking is audited."""

    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    actions = ["revoke"]

    def has_revoke_permission(self, request):
        return request.user.has_perm("reviews.change_apitoken")

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = [
            pk
            for pk in queryset.order_by("pk").values_list("pk", flat=True)
            if token_revoke(token_id=pk, actor=request.user)
        ]
        self.message_user(
            request,
            f"Revoked {len(revoked)} token{'s' if len(revoked) != 1 else ''}.",
            messages.SUCCESS,
        )
