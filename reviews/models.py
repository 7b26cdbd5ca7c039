"""Review domain models: approval policies, transition requests, votes and the audit chain.

Approver groups are Django auth groups: admins already know how to manage those, and membership is
what the YAML policy file sets.
"""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connections, models
from django.utils import timezone

from quorum_cli.attestation import tag_for
from registry import metrics
from registry.targets import Placed, Target


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
    # rules) and its `break_glass:` section, as validated by `reviews.policy_spec`; None: absent.
    rollback = models.JSONField(null=True, blank=True)
    break_glass = models.JSONField(null=True, blank=True)
    # A move of a covered target made in MLflow directly: flagged (audited, mailed, shown), or
    # also undone by a worker (reviews/reverts.py).
    out_of_band = models.CharField(max_length=8, choices=OutOfBand.choices, default=OutOfBand.FLAG)
    # {"escalate": [...], "evidence_gates": [...]}: approvals that scale with the evidence
    # packet, as the policy file writes them (reviews.policy_spec.EscalationSpec).
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


class Decision(models.TextChoices):
    PENDING = "pending", "pending"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    CANCELLED = "cancelled", "cancelled"
    EXPIRED = "expired", "expired"


class Execution(models.TextChoices):
    NONE = "", "not started"
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class RequestKind(models.TextChoices):
    PROMOTION = "promotion", "promotion"
    # Puts back a version that held the target before (`undoes`: the request it undoes, if any).
    ROLLBACK = "rollback", "rollback"
    # Carried out at once by an on-call member, with a reason; ratified afterwards.
    BREAK_GLASS = "break_glass", "break glass"
    # The normal quorum's after-the-fact approval of a break-glass move (`ratifies`).
    RATIFICATION = "ratification", "ratification"


# The longest comment on a request or a vote, in characters, wherever it is written (the forms,
# the API): long enough for a review, short enough for a page, a mail and a log line.
COMMENT_MAX = 4000


class Attestation(models.TextChoices):
    """The signed approval proof on the promoted version (reviews/attestation.py)."""

    NONE = "", "none"  # not carried out yet, or carried out before proofs were written
    PENDING = "pending", "pending"  # the version moved; the proof is being written or retried
    WRITTEN = "written", "written"
    FAILED = "failed", "failed"  # every attempt failed: `manage.py write_attestation ID`


class TransitionRequestQuerySet(models.QuerySet["TransitionRequest"]):
    def open(self):
        """Requests that still hold their (version, target): undecided, or approved and not done."""
        return self.filter(OPEN_CONDITION)

    def locked(self, pk: object) -> "TransitionRequest":
        """Request `pk` with its row locked (SELECT ... FOR UPDATE) until the transaction ends,
        its version, model and requester loaded: how a request's state is read to be changed.

        Call it inside `transaction.atomic()` (Django refuses a row lock outside one). When no
        request has that id (it never existed, or `pk` is not an id at all) it raises
        `TransitionRequest.DoesNotExist`; each caller says what that means for it (a refusal for
        a person, nothing to do for a job).
        """
        try:
            return (
                self.select_for_update(of=("self",))
                .select_related("version__model", "requester")
                .get(pk=pk)
            )
        except (ValueError, TypeError):  # "abc", None: no request has such an id
            raise TransitionRequest.DoesNotExist(f"There is no request #{pk}.") from None


OPEN_CONDITION = models.Q(decision=Decision.PENDING) | (
    models.Q(decision=Decision.APPROVED) & ~models.Q(execution=Execution.DONE)
)


class TransitionRequest(models.Model):
    """A request for one version to reach one target, decided by its policy's sign-offs."""

    version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="requests"
    )
    # "Production", "Staging", "Archived", "None", or an alias written "@champion".
    target = models.CharField(max_length=260)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="transition_requests"
    )
    comment = models.TextField(blank=True, default="")
    kind = models.CharField(
        max_length=16, choices=RequestKind.choices, default=RequestKind.PROMOTION, db_index=True
    )
    undoes = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="undone_by"
    )
    ratifies = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="ratifications"
    )
    # The requester's answer to an earlier rejection of the same version for the same target
    # (`reviews.related`): required before that version may be requested again.
    rejection_answer = models.TextField(blank=True, default="")
    policy = models.ForeignKey(
        ApprovalPolicy, on_delete=models.SET_NULL, null=True, blank=True, related_name="requests"
    )
    # The policy as it was when the request was made: later edits do not change a request.
    policy_snapshot = models.JSONField(default=dict)
    # The version holding the target when the request was made (or after it moved), if any.
    baseline = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    candidate_metrics = models.JSONField(default=dict)
    baseline_metrics = models.JSONField(null=True, blank=True)
    gate_results = models.JSONField(default=list)

    decision = models.CharField(
        max_length=16, choices=Decision.choices, default=Decision.PENDING, db_index=True
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    decision_reason = models.TextField(blank=True, default="")

    execution = models.CharField(
        max_length=16, choices=Execution.choices, default=Execution.NONE, blank=True
    )
    execution_attempts = models.PositiveSmallIntegerField(default=0)
    execution_error = models.TextField(blank=True, default="")
    execution_started_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    # Times the reconciler re-queued a lost job since the approval or an admin's retry; capped by
    # QUORUM_TRANSITION_MAX_REQUEUES.
    execution_requeues = models.PositiveSmallIntegerField(default=0)
    # Done in MLflow, and no sync has mirrored the move yet: whenever one does, however late, the
    # move is credited to this request rather than reported as made in MLflow directly.
    awaiting_mirror = models.BooleanField(default=False)
    # The mirror changes this request's transition caused (stage moves, archived versions, aliases).
    caused_changes = models.ManyToManyField(
        "registry.RegistryChange", blank=True, related_name="caused_by"
    )
    # The signed proof written on the version once it moved (reviews/attestation.py).
    attestation = models.CharField(
        max_length=16, choices=Attestation.choices, default=Attestation.NONE, blank=True
    )
    attestation_attempts = models.PositiveSmallIntegerField(default=0)
    attestation_error = models.TextField(blank=True, default="")
    attested_at = models.DateTimeField(null=True, blank=True)
    attestation_key_id = models.CharField(max_length=64, blank=True, default="")

    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    objects = TransitionRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "target"],
                condition=OPEN_CONDITION,
                name="one_open_request_per_version_target",
            ),
        ]
        indexes = [models.Index(fields=["decision", "expires_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.version} → {self.target}"

    @property
    def parsed_target(self) -> Target:
        """The target as a value: a request's target was checked when the request was made."""
        return Target.parse(self.target)

    @property
    def is_alias_target(self) -> bool:
        return self.parsed_target.is_alias

    @property
    def alias(self) -> str:
        return self.parsed_target.alias

    @property
    def attestation_tag(self) -> str:
        """The MLflow version tag that holds this request's signed approval proof."""
        return tag_for(self.target)

    @property
    def archives_holders(self) -> bool:
        """Carrying it out archives the versions now in its stage (MLflow does so only for
        Staging and Production)."""
        return bool(
            self.policy_snapshot.get("archive_existing", False)
            and self.parsed_target.archive_existing_applies
        )

    def versions_to_archive(self, versions: Iterable[Placed]) -> list[int]:
        """Of the model's `versions` as MLflow lists them before the move, the numbers carrying
        this request out archives: the others in its stage, when its policy archives them."""
        if not self.archives_holders:
            return []
        stage, own = self.parsed_target.stage, self.version.version
        return sorted(v.version for v in versions if v.stage == stage and v.version != own)

    def archived_versions(self) -> list[int]:
        """The numbers of the versions this request's transition archived, as its job recorded
        them (`transition.done`, from `versions_to_archive`): the mirror's sync of the move is a
        job of its own and may not have run yet. Empty until the transition is done."""
        done = self.audit_events.filter(action="transition.done").order_by("-sequence").first()
        return done.details.get("archived_versions", []) if done else []


class VoteChoice(models.TextChoices):
    APPROVE = "approve", "approve"
    REJECT = "reject", "reject"


class Vote(models.Model):
    """One user's approval or rejection of a request.

    A user has at most one current vote per request. An approval goes stale when the evidence
    behind it changes (`services.approvals_mark_stale`): it stays here, struck through, and its
    voter may vote again. How approvals count towards the policy is `reviews.counting`.
    """

    request = models.ForeignKey(TransitionRequest, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="votes"
    )
    decision = models.CharField(max_length=8, choices=VoteChoice.choices)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # The required groups the voter was in when voting: those this vote may count for (it counts
    # for one of them at most, see `reviews.counting`). The audit event records the same list.
    groups = models.JSONField(default=list)
    # What the voter saw: {"candidate": {...}, "baseline": {...} | None}.
    seen_metrics = models.JSONField(default=dict)
    # The evidence digests the approval saw: {"candidate": ..., "baseline": ...} (None: unread).
    seen_evidence = models.JSONField(default=dict, blank=True)
    stale = models.BooleanField(default=False)
    stale_reason = models.TextField(blank=True, default="")
    stale_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "user"],
                condition=models.Q(stale=False),
                name="one_current_vote_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.decision}s #{self.request_id}"


class Comment(models.Model):
    """A remark on a request without a vote, by anyone who may see it (`reviews.conversation`).

    The audit event `comment.posted` carries the same text: the request's timeline reads that.
    """

    request = models.ForeignKey(
        TransitionRequest, on_delete=models.CASCADE, related_name="comments"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_comments"
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.author} on #{self.request_id}"


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
    until a later verification finds that link whole again (see `reviews.audit`).
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


class ApiToken(models.Model):
    """A bearer token for the REST API and the `quorum` CLI, acting as `user`.

    Only the SHA-256 of the secret is stored: the plaintext is shown once, when it is created
    (`manage.py create_api_token`). `prefix` is its first characters, enough to tell tokens apart
    in the admin without being usable.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, default="api")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name}, {self.user})"


# -- notifications ------------------------------------------------------------------------------


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
    """One POST of one event to one of `QUORUM_WEBHOOK_URLS` (see `reviews.webhooks_out`)."""

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


class RevertState(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "reverted"
    SKIPPED = "skipped", "left to Quorum's own transition"
    FAILED = "failed", "failed"


class OutOfBandRevert(models.Model):
    """Quorum undoing out-of-band moves of one model that a policy says to revert
    (`out_of_band: revert`, see `reviews.reverts`).

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
