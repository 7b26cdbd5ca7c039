"""Review pages: the inbox, request pages and their actions, the audit trail, settings."""

from django.urls import path

from . import views, views_break_glass, views_rollback, views_settings

app_name = "reviews"

urlpatterns = [
    path("reviews/", views.inbox, name="inbox"),
    path("reviews/<int:pk>/", views.request_detail, name="request_detail"),
    path("reviews/<int:pk>/status", views.request_status, name="request_status"),
    path("reviews/<int:pk>/vote", views.vote, name="vote"),
    path("reviews/<int:pk>/comment", views.comment, name="comment"),
    path("reviews/<int:pk>/cancel", views.cancel, name="cancel"),
    path("reviews/<int:pk>/retry", views.retry, name="retry"),
    path(
        "models/<str:name>/versions/<str:version>/request/",
        views.request_new,
        name="request_new",
    ),
    path("models/<str:name>/rollback", views_rollback.rollback, name="rollback"),
    path("models/<str:name>/break-glass", views_break_glass.break_glass, name="break_glass"),
    path("break-glass/", views_break_glass.break_glass_report, name="break_glass_report"),
    path("audit/", views.audit_log, name="audit"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
    path(
        "settings/notifications/",
        views_settings.notification_settings,
        name="notification_settings",
    ),
]
