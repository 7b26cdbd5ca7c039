"""What Quorum sends about audit events: mail to users, as they chose, and webhook deliveries.

Both are outbox items, written in the transaction of the event they are about
(`reviews.notify.outbox`).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .audit import AuditEvent


class NotificationPreference(models.Model):
    """A user's choice about optional mail. Decisions on their own requests always go."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    reminders = models.BooleanField(
        default=True,
        help_text="Remind me of requests I can still vote on when they are about to expire.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"notification preferences of {self.user}"


class OutboxState(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    SKIPPED = "skipped", "skipped"
    FAILED = "failed", "gave up"


class OutboxItem(models.Model):
    """Something to send about one audit event, written in the same transaction as the event.

    A sender claims an item with a conditional update of `claimed_until` before sending, so two
    workers never send it both; the state records what was sent, so a retried job skips it.
    """

    event = models.ForeignKey(AuditEvent, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=8, choices=OutboxState.choices, default=OutboxState.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class NotificationKind(models.TextChoices):
    REVIEW_NEEDED = "review_needed", "review needed"
    DECIDED = "decided", "decision"
    DONE = "done", "transition done"
    FAILED = "failed", "transition failed"
    REMINDER = "reminder", "reminder"
    ESCALATION = "escalation", "escalation"
    OUT_OF_BAND = "out_of_band", "out-of-band change"
    REVERTED = "reverted", "out-of-band move reverted"
    REVERT_FAILED = "revert_failed", "out-of-band revert failed"
    SYNC_FAILING = "sync_failing", "registry sync failing"
    BREAK_GLASS = "break_glass", "break glass used"
    UNRATIFIED = "unratified", "break glass unratified"
    UNRATIFIABLE = "unratifiable", "ratification cannot pass"
    COMMENT = "comment", "comment"
    REREVIEW = "rereview", "approval dismissed"


class Notification(OutboxItem):
    """One email to one user about one event (see `reviews.notify`)."""

    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    # Unique with the recipient: "event-<id>", or "reminder-<request id>" for mail a request
    # gets once however many events ask for it.
    key = models.CharField(max_length=64)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key", "recipient"], name="one_mail_per_key_recipient"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} mail to {self.recipient} ({self.state})"


class WebhookDelivery(OutboxItem):
    """One POST of one event to one of `QUORUM_WEBHOOK_URLS` (see `reviews.notify.webhooks_out`)."""

    url = models.URLField(max_length=2000)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "url"], name="one_delivery_per_event_url"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event.action} to {self.url} ({self.state})"
