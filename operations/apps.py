from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Metrics, health checks and structured logs (docs/operations.md)."""

    name = "operations"
    verbose_name = "Operations"
