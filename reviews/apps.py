from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from registry.signals import changes_observed

        from .registry_events import on_changes_observed

        changes_observed.connect(on_changes_observed, dispatch_uid="reviews.registry_events")
