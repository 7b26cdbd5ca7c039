from django.apps import AppConfig


class QuorumConfig(AppConfig):
    """The project package as an app, so that its deploy checks are registered."""

    name = "quorum"
    verbose_name = "Quorum"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the checks
