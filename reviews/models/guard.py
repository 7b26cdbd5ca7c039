"""What the registry's quorum-guard app last said about the MLflow server Quorum talks to."""

from __future__ import annotations

from django.db import models


class GuardProbe(models.Model):
    """The latest answer of the registry's quorum-guard app (one row, refreshed after each sync):
    whether the MLflow server Quorum talks to refuses moves of protected targets by anyone else."""

    checked_at = models.DateTimeField()
    tracking_uri = models.CharField(max_length=2000)
    guarded = models.BooleanField(default=False)
    version = models.CharField(max_length=50, blank=True, default="")
    auth = models.CharField(max_length=20, blank=True, default="")
    # Whether the guard recognises Quorum's credentials as its service identity: without that,
    # Quorum's own transitions of protected targets are refused too.
    service_identity = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return self.summary

    @classmethod
    def latest(cls) -> GuardProbe | None:
        """The one row, or None before the first sync probed the guard."""
        return cls.objects.filter(pk=1).first()

    @property
    def summary(self) -> str:
        if self.error:
            return (
                f"Could not ask MLflow at {self.tracking_uri} whether it is guarded: {self.error}"
            )
        if not self.guarded:
            return (
                f"MLflow at {self.tracking_uri} is not guarded: anyone with EDIT on a model can "
                "move its protected stages and aliases there directly."
            )
        if not self.service_identity:
            return (
                f"MLflow at {self.tracking_uri} is guarded by quorum-guard {self.version}, but it "
                "does not recognise Quorum's credentials: Quorum's own transitions are refused."
            )
        return (
            f"MLflow at {self.tracking_uri} is guarded by quorum-guard {self.version} "
            f"({self.auth}); only Quorum moves protected stages and aliases."
        )
