from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry mirror"

    def ready(self) -> None:
        from . import evidence
        from .signals import changes_observed

        # New versions get their evidence read once, by a worker, after the sync commits.
        changes_observed.connect(evidence.on_changes_observed, dispatch_uid="registry.evidence")
