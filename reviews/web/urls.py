"""Review pages: the inbox, request pages and their actions, the audit trail, analytics,
settings."""

from django.urls import path

from . import (
    views_analytics,
    views_audit,
    views_break_glass,
    views_inbox,
    views_promotion,
    views_request,
    views_rollback,
    views_settings,
)

app_name = "reviews"

urlpatterns = [
    path("reviews/", views_inbox.inbox, name="inbox"),
    path("reviews/<int:pk>/", views_request.request_detail, name="request_detail"),
    path("reviews/<int:pk>/status", views_request.request_status, name="request_status"),
    path("reviews/<int:pk>/vote", views_request.vote, name="vote"),
    path("reviews/<int:pk>/comment", views_request.comment, name="comment"),
    path("reviews/<int:pk>/cancel", views_request.cancel, name="cancel"),
    path("reviews/<int:pk>/retry", views_request.retry, name="retry"),
    path(
        "models/<str:name>/versions/<str:version>/request/",
        views_promotion.request_new,
        name="request_new",
    ),
    path("models/<str:name>/rollback", views_rollback.rollback, name="rollback"),
    path("models/<str:name>/break-glass", views_break_glass.break_glass, name="break_glass"),
    path(
        "models/<str:name>/break-glass/confirm",
        views_break_glass.break_glass_confirm,
        name="break_glass_confirm",
    ),
    path("break-glass/", views_break_glass.break_glass_report, name="break_glass_report"),
    path("audit/", views_audit.audit_log, name="audit"),
    path("audit/export.csv", views_audit.audit_export, name="audit_export"),
    path("analytics/", views_analytics.analytics, name="analytics"),
    path(
        "settings/notifications/",
        views_settings.notification_settings,
        name="notification_settings",
    ),
]
