from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from identity import events as identity_events
        from registry.signals import changes_observed

        from . import checks  # noqa: F401 - checks registers the checks
        from .audit import chain

        # Identity's changes (accounts, groups from the provider) go into the audit chain.
        identity_events.set_recorder(chain.record)
        from .execution.registry_events import on_changes_observed

        changes_observed.connect(on_changes_observed, dispatch_uid="reviews.registry_events")

        from registry.signals import sync_finished

        from .execution.sync_health import on_sync_finished

        sync_finished.connect(on_sync_finished, dispatch_uid="reviews.sync_health")

        from django.db.models.signals import post_delete, post_save

        from .execution import guard
        from .models import ApprovalPolicy

        # The guard inside MLflow learns what is protected from tags Quorum keeps in step.
        sync_finished.connect(guard.on_sync_finished, dispatch_uid="reviews.guard")
        post_save.connect(guard.on_policy_changed, sender=ApprovalPolicy, dispatch_uid="guard.save")
        post_delete.connect(
            guard.on_policy_changed, sender=ApprovalPolicy, dispatch_uid="guard.delete"
        )

        from . import notify
        from .notify import webhooks_out
        from .signals import event_recorded

        # Mail and webhooks go to an outbox in the event's transaction; workers send them.
        event_recorded.connect(notify.on_event_recorded, dispatch_uid="reviews.notify")
        event_recorded.connect(webhooks_out.on_event_recorded, dispatch_uid="reviews.webhooks_out")

        from registry.evidence import evidence_stored

        from .decisions.reevaluation import on_evidence_stored

        # A version's evidence, read after the sync, may change what its open requests need.
        evidence_stored.connect(on_evidence_stored, dispatch_uid="reviews.escalation")
        from registry.content import content_stored

        from .decisions.pins import on_content_stored

        # A version's content digest, read after the sync, is what its open requests pin.
        content_stored.connect(on_content_stored, dispatch_uid="reviews.pins")

        from registry import quorum_tags, slots

        from .execution.proof_keys import verifying_keys

        # The registry's pages check the proofs in a version's tags with the keys Quorum signs
        # with, without importing the review app.
        quorum_tags.set_proof_keys(verifying_keys)

        # The registry's pages show the review app's parts without loading its templatetags.
        slots.fill("model_banner", "reviews/slots/model_banner.html")
        slots.fill("model_history", "reviews/slots/model_history.html")
        slots.fill("model_footer", "reviews/slots/model_footer.html")
        slots.fill("version_banner", "reviews/slots/version_banner.html")
