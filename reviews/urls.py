"""Review pages: the inbox, request pages and their actions, the audit trail, settings."""

from django.urls import path

from . import views

app_name = "reviews"

urlpatterns = [
    path("reviews/<int:pk>/", views.request_detail, name="request_detail"),
]
