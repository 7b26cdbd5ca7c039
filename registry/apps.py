from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry mirror"

    def ready(self) -> None:
        from .jobs import on_new_versions
        from .signals import changes_observed

        # New versions get their evidence and their content digest read once, by a worker, after
        # the sync commits.
        changes_observed.connect(on_new_versions, dispatch_uid="registry.jobs.on_new_versions")
