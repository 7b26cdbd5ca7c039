"""URL root: registry pages, reviews, the MLflow webhook receiver, auth, admin, RQ dashboard."""

from django.contrib import admin
from django.urls import include, path

from reviews.api import api

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/django_rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("", include("reviews.urls")),
    path("", include("registry.urls")),
]
