from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry mirror"

    def ready(self) -> None:
        from . import content, evidence
        from .signals import changes_observed

        # New versions get their evidence and their content digest read once, by a worker, after
        # the sync commits.
        changes_observed.connect(evidence.on_changes_observed, dispatch_uid="registry.evidence")
        changes_observed.connect(content.on_changes_observed, dispatch_uid="registry.content")
