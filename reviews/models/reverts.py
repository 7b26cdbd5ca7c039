"""Out-of-band reverts: Quorum undoing moves made in MLflow directly, where a policy says so."""

from django.db import models


class RevertState(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "reverted"
    SKIPPED = "skipped", "left to Quorum's own transition"
    FAILED = "failed", "failed"


class OutOfBandRevert(models.Model):
    """Quorum undoing out-of-band moves of one model that a policy says to revert
    (`out_of_band: revert`, see `reviews.execution.reverts`).

    `moves` lists what the worker does in MLflow, written (and committed) before it does it, so a
    sync that observes those moves credits them to Quorum instead of reporting them as out-of-band
    again: a revert never loops.
    """

    model = models.ForeignKey(
        "registry.RegisteredModel", on_delete=models.CASCADE, related_name="reverts"
    )
    # The out-of-band changes this revert undoes.
    changes = models.ManyToManyField("registry.RegistryChange", related_name="reverts")
    state = models.CharField(
        max_length=8, choices=RevertState.choices, default=RevertState.QUEUED, db_index=True
    )
    # [{"kind": "stage", "version": 3, "old": "Production", "new": "None"},
    #  {"kind": "alias", "alias": "champion", "old": 3, "new": 1}, ...]: `new` None for an alias
    # deleted because nobody held it before.
    moves = models.JSONField(default=list)
    # Why targets were left alone: Quorum's own transition of that target, a version moved since.
    skipped = models.JSONField(default=list)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The mirror changes the revert's own moves caused, once a sync observed them.
    caused_changes = models.ManyToManyField(
        "registry.RegistryChange", blank=True, related_name="caused_by_revert"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"revert #{self.pk} of {self.model.name} ({self.state})"
