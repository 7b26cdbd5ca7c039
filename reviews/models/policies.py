"""Approval policies: who signs off which (model, target) pairs, and what a candidate must pass.

Approver groups are Django auth groups: admins already know how to manage those, and membership is
what the YAML policy file sets.
"""

from datetime import timedelta

from django.contrib.auth.models import Group
from django.db import models

from registry import metrics


class OutOfBand(models.TextChoices):
    """What Quorum does about a move of a covered target that it did not make itself."""

    FLAG = "flag", "flag it"
    REVERT = "revert", "revert it"


class ApprovalPolicy(models.Model):
    """Who must sign off which (model, target) pairs, and what else a candidate must pass."""

    name = models.CharField(max_length=100, unique=True)
    # Globs on registered model names ("*", "fraud-*", "churn-model").
    model_patterns = models.JSONField(default=list)
    # Stage names ("Production") and aliases written with @ ("@champion").
    targets = models.JSONField(default=list)
    allow_self_approval = models.BooleanField(default=False)
    expires_after = models.DurationField(default=timedelta(days=7))
    # Archive the versions that hold the stage when promoting to Staging/Production.
    archive_existing = models.BooleanField(default=False)
    # Eligible rejections that reject a request outright.
    rejections_needed = models.PositiveSmallIntegerField(default=1)
    # The policy's `rollback:` section (what a rollback request needs instead of the normal
    # rules) and its `break_glass:` section, as validated by `reviews.policies.spec`; None: absent.
    rollback = models.JSONField(null=True, blank=True)
    break_glass = models.JSONField(null=True, blank=True)
    # A move of a covered target made in MLflow directly: flagged (audited, mailed, shown), or
    # also undone by a worker (reviews/execution/reverts.py).
    out_of_band = models.CharField(max_length=8, choices=OutOfBand.choices, default=OutOfBand.FLAG)
    # {"escalate": [...], "evidence_gates": [...]}: approvals that scale with the evidence
    # packet, as the policy file writes them (reviews.policies.spec.EscalationSpec).
    evidence_rules = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "approval policies"

    def __str__(self) -> str:
        return self.name


class PolicyRequirement(models.Model):
    """One line of a policy's `require`: at least `approvals` approvals from members of `group`."""

    policy = models.ForeignKey(
        ApprovalPolicy, on_delete=models.CASCADE, related_name="requirements"
    )
    group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="requirements")
    approvals = models.PositiveSmallIntegerField(default=1)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "group"], name="one_requirement_per_group"),
        ]

    def __str__(self) -> str:
        return f"{self.approvals} of {self.group.name}"


class PolicyRequester(models.Model):
    """One group of a policy's `requesters`: its members may request what the policy covers.

    A policy without any lets every signed-in user request. The group is protected: deleting it
    must not silently turn "these groups may request" into "anyone may request".
    """

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="requesters")
    group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="requester_rows")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "group"], name="one_requester_row_per_group"),
        ]

    def __str__(self) -> str:
        return f"{self.group.name} may request under {self.policy.name}"


class GateKind(models.TextChoices):
    REQUIRED = "required", "required"
    AUTO_APPROVE = "auto_approve", "auto-approve"


class PolicyGate(models.Model):
    """A metric check against a fixed `value`, or the current holder's value + `baseline_delta`."""

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="gates")
    metric = models.CharField(max_length=250)
    op = models.CharField(max_length=2)
    value = models.FloatField(null=True, blank=True)
    baseline_delta = models.FloatField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=GateKind.choices, default=GateKind.REQUIRED)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["policy", "position"]

    def __str__(self) -> str:
        threshold = (
            metrics.format_value(self.value)
            if self.value is not None
            else f"baseline {metrics.format_change(self.baseline_delta)}"
        )
        return f"{self.metric} {self.op} {threshold} ({self.get_kind_display()})"
