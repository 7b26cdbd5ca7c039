"""The audit chain: its append-only events and the head every append locks."""

from django.db import connections, models

from .requests import TransitionRequest


class AuditEventManager(models.Manager):
    def actions(self) -> list[str]:
        """Every action recorded, in order: one index probe per distinct action (a recursive
        query skips from one to the next), where DISTINCT would read every event's row."""
        db = connections[self.db]
        table = db.ops.quote_name(self.model._meta.db_table)
        with db.cursor() as cursor:
            cursor.execute(
                f"WITH RECURSIVE found(action) AS ("  # noqa: S608 - the table's own name
                f" SELECT MIN(action) FROM {table}"
                f" UNION ALL SELECT (SELECT MIN(action) FROM {table} WHERE action > found.action)"
                f" FROM found WHERE found.action IS NOT NULL"
                f") SELECT action FROM found WHERE action IS NOT NULL"
            )
            return [action for (action,) in cursor.fetchall()]


class AuditEvent(models.Model):
    """An append-only, hash-chained record of something that happened (see `reviews.audit`)."""

    sequence = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=150)  # a username, or "policy" / "system" / "mlflow"
    action = models.CharField(max_length=64, db_index=True)
    request = models.ForeignKey(
        TransitionRequest,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
        db_constraint=False,
    )
    model_name = models.CharField(max_length=256, blank=True, default="", db_index=True)
    version = models.PositiveIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventManager()

    class Meta:
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor}"


class AuditHead(models.Model):
    """The chain's head: locked by every append so concurrent writers still form one chain.

    It also keeps the verified checkpoint: the event up to which the chain was last recomputed
    and found whole, its hash and when, so that the audit page verifies only what came after it.
    `broken_at` is where the last verification stopped at a link that did not hold; it stays set
    until a later verification finds that link whole again (see `reviews.audit.verification`).
    """

    name = models.CharField(max_length=16, primary_key=True, default="audit")
    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)
    verified_sequence = models.PositiveBigIntegerField(default=0)
    verified_hash = models.CharField(max_length=64, default="0" * 64)
    verified_at = models.DateTimeField(null=True, blank=True)
    broken_at = models.PositiveBigIntegerField(null=True, blank=True)
    broken_problem = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"audit head at #{self.sequence}"
