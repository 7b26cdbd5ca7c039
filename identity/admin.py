"""Who signed in through the provider, as whom, and with which provider groups last time."""

from django.contrib import admin

from .models import ProviderIdentity


@admin.register(ProviderIdentity)
class ProviderIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "subject", "issuer", "last_groups", "last_sign_in_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "subject"]
    readonly_fields = ["user", "issuer", "subject", "created_at", "last_groups", "last_sign_in_at"]

    def has_add_permission(self, request):
        return False  # links are made by sign-ins only
