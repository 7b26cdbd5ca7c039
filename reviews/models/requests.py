"""Transition requests: their kinds and states, and the votes and comments on them."""

from collections.abc import Iterable

from django.conf import settings
from django.db import models, transaction
from django.db.transaction import TransactionManagementError

from quorum_cli.attestation import tag_for
from registry.targets import Placed, Target

from .policies import ApprovalPolicy


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
    """The signed approval proof on the promoted version (reviews/execution/attestation.py)."""

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
        # SQLite ignores row locks, so Django refuses them outside a transaction only elsewhere:
        # refusing here too keeps a caller's missing `atomic()` from passing on SQLite unseen.
        if not transaction.get_connection(self.db).in_atomic_block:
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
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
    # (`reviews.decisions.related`): required before that version may be requested again.
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
    # What the request asks about (`reviews.decisions.pins`): the version's content digest ("" while
    # it is not known; pinned when the digest job stores it) and the metric values its gates read,
    # {"candidate": {key: {...}}, "baseline": {key: value}}, with the history of a gated value
    # logged again after the version was registered.
    content_digest = models.CharField(max_length=64, blank=True, default="")
    metric_pins = models.JSONField(default=dict, blank=True)

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
    # The signed proof written on the version once it moved (reviews/execution/attestation.py).
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
        indexes = [
            models.Index(fields=["decision", "expires_at"]),
            # The lists that show the newest few of many: requests in a state (the API's
            # `?state=`), a requester's own, and the recently decided (the inbox). Read in index
            # order, a page of 20 costs the same after a year of reviews as on the first day.
            models.Index(fields=["decision", "-created_at", "-id"], name="request_state_newest"),
            models.Index(fields=["requester", "-created_at", "-id"], name="request_mine_newest"),
            models.Index(
                fields=["-decided_at", "-id"],
                condition=~models.Q(decision=Decision.PENDING),
                name="request_decided_newest",
            ),
        ]

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
    behind it changes (`reviews.decisions.counting.approvals_mark_stale`): it stays here, struck
    through, and its voter may vote again. How approvals count towards the policy is
    `reviews.decisions.counting`.
    """

    request = models.ForeignKey(TransitionRequest, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="votes"
    )
    decision = models.CharField(max_length=8, choices=VoteChoice.choices)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # The required groups the voter was in when voting: those this vote may count for (it counts for
    # one of them at most, see `reviews.decisions.counting`). The audit event records the same list.
    groups = models.JSONField(default=list)
    # What the voter saw: {"candidate": {...}, "baseline": {...} | None}.
    seen_metrics = models.JSONField(default=dict)
    # The evidence digests the approval saw: {"candidate": ..., "baseline": ...} (None: unread).
    seen_evidence = models.JSONField(default=dict, blank=True)
    # The content digest the request pinned when this vote was cast ("": not known yet).
    seen_digest = models.CharField(max_length=64, blank=True, default="")
    stale = models.BooleanField(default=False)
    stale_reason = models.TextField(blank=True, default="")
    # What caused it, as a link: {"label": "request #7", "url": "/reviews/7/"}; {} when the
    # reason says all there is.
    stale_cause = models.JSONField(default=dict, blank=True)
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
    """A remark on a request without a vote, by anyone who may see it
    (`reviews.conversation.comments`).

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
