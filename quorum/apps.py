from django.apps import AppConfig


class QuorumConfig(AppConfig):
    """The project package as an app, so that its deploy checks are registered."""

    name = "quorum"
    verbose_name = "Quorum"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from infra import page_cache

        from . import checks  # noqa: F401 - registers the checks

        # Every connection's writes invalidate the pages kept (infra/page_cache.py).
        connection_created.connect(page_cache.install, dispatch_uid="quorum.page_cache")
