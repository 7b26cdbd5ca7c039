"""Proof revocations: a version left a target, so its signed proof for that target ends
(`reviews.execution.revocation`)."""

from django.db import models


class RevocationState(models.TextChoices):
    PENDING = "pending", "pending"  # queued, or being retried
    WRITTEN = "written", "written"  # the signed revocation replaced the proof in MLflow
    # No proof of that holding was on the version (never proven, or proven again since).
    NOTHING = "nothing", "nothing to revoke"
    FAILED = "failed", "failed"  # every attempt failed: the reconciler does not retry it


class ProofRevocation(models.Model):
    """`version` left `target` at `left_at` because of `request` (a promotion that replaced or
    archived it, a rollback, a break glass, a revert of an unratified one) or of `revert` (an
    out-of-band move undone); `reason` says so in words."""

    version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.CASCADE, related_name="proof_revocations"
    )
    target = models.CharField(max_length=260)
    left_at = models.DateTimeField()
    reason = models.TextField()
    request = models.ForeignKey(
        "reviews.TransitionRequest",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="revocations",
    )
    revert = models.ForeignKey(
        "reviews.OutOfBandRevert",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="revocations",
    )
    state = models.CharField(
        max_length=16, choices=RevocationState.choices, default=RevocationState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    written_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One revocation per version and target for each move that made it leave.
            models.UniqueConstraint(
                fields=["version", "target", "request"],
                condition=models.Q(request__isnull=False),
                name="one_revocation_per_request_move",
            ),
            models.UniqueConstraint(
                fields=["version", "target", "revert"],
                condition=models.Q(revert__isnull=False),
                name="one_revocation_per_revert_move",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version_id} left {self.target}: {self.reason}"
