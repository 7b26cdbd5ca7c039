"""Registry pages and the MLflow webhook receiver."""

from django.urls import path

from . import views, webhooks

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="model_list"),
    path("models/<str:name>/", views.model_detail, name="model_detail"),
    path("models/<str:name>/versions/<str:version>/", views.version_detail, name="version_detail"),
    path("models/<str:name>/compare", views.compare, name="compare"),
    path("webhooks/mlflow", webhooks.mlflow_webhook, name="mlflow_webhook"),
]
