"""The mirror of the MLflow Model Registry.

Rows here are written only by `registry.sync`, never by a reviewer: MLflow stays the source of
truth, and every difference the sync observes is kept as a `RegistryChange`.
"""

from typing import Self

from django.db import models


class Stage(models.TextChoices):
    NONE = "None", "None"
    STAGING = "Staging", "Staging"
    PRODUCTION = "Production", "Production"
    ARCHIVED = "Archived", "Archived"


# The longest registered model name the mirror holds.
MODEL_NAME_MAX = 256


class RegisteredModelQuerySet(models.QuerySet["RegisteredModel"]):
    def live(self) -> Self:
        return self.filter(deleted=False)


class RegisteredModel(models.Model):
    name = models.CharField(max_length=MODEL_NAME_MAX, unique=True)
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    # alias -> version number, as MLflow reports it on the registered model.
    aliases = models.JSONField(default=dict, blank=True)
    creation_timestamp = models.BigIntegerField(null=True)  # MLflow milliseconds
    last_updated_timestamp = models.BigIntegerField(null=True)
    deleted = models.BooleanField(default=False)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersionQuerySet(models.QuerySet["ModelVersion"]):
    def live(self) -> Self:
        return self.filter(deleted=False)


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.NONE)
    status = models.CharField(max_length=32, blank=True, default="")
    source = models.TextField(blank=True, default="")
    run_id = models.CharField(max_length=64, blank=True, default="")
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    creation_timestamp = models.BigIntegerField(null=True)
    last_updated_timestamp = models.BigIntegerField(null=True, db_index=True)
    # The version's run, fetched in batches by the sync: final metric values and params.
    experiment_id = models.CharField(max_length=64, blank=True, default="")
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    deleted = models.BooleanField(default=False)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["model__name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="unique_model_version"),
        ]
        indexes = [models.Index(fields=["model", "stage"])]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"


class MetricHistory(models.Model):
    """One metric's history for one run, fetched when a page first needs it, then cached."""

    run_id = models.CharField(max_length=64)
    key = models.CharField(max_length=250)
    # [[step, value, timestamp_ms], ...] ordered by step.
    points = models.JSONField(default=list)
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run_id", "key"], name="unique_run_metric_history"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.key}"


class ChangeKind(models.TextChoices):
    MODEL_CREATED = "model_created", "model registered"
    MODEL_DELETED = "model_deleted", "model deleted"
    VERSION_CREATED = "version_created", "version created"
    STAGE_CHANGED = "stage_changed", "stage changed"
    ALIAS_ADDED = "alias_added", "alias set"
    ALIAS_REMOVED = "alias_removed", "alias removed"
    TAGS_CHANGED = "tags_changed", "tags changed"
    DESCRIPTION_CHANGED = "description_changed", "description changed"
    METRICS_CHANGED = "metrics_changed", "run metrics changed"
    VERSION_DELETED = "version_deleted", "version deleted"


class ChangeOrigin(models.TextChoices):
    UNKNOWN = "", "not classified"
    QUORUM = "quorum", "made by a Quorum transition"
    OUT_OF_BAND = "out_of_band", "made in MLflow directly"


# The kinds of change that move a version between targets: these are classified by origin.
TRANSITION_KINDS = ("stage_changed", "alias_added", "alias_removed")


class RegistryChange(models.Model):
    """A difference between MLflow and the mirror, as one sync observed it.

    The review app reads these to tell transitions its own jobs made from out-of-band ones.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="changes")
    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, null=True, blank=True, related_name="changes"
    )
    kind = models.CharField(max_length=32, choices=ChangeKind.choices)
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    observed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sync_run = models.ForeignKey(
        "SyncRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="changes"
    )
    # Set by the review app for transition kinds: its own job, or someone working in MLflow.
    origin = models.CharField(
        max_length=16, choices=ChangeOrigin.choices, default=ChangeOrigin.UNKNOWN, blank=True
    )

    class Meta:
        ordering = ["-observed_at", "-id"]
        indexes = [models.Index(fields=["kind", "origin"])]

    def __str__(self) -> str:
        # A null version reads as None without a query.
        version = self.version
        target = f"{self.model.name} v{version.version}" if version is not None else self.model.name
        return f"{target}: {self.get_kind_display()} {self.old!r} -> {self.new!r}"


class SyncKind(models.TextChoices):
    FULL = "full", "full"
    INCREMENTAL = "incremental", "incremental"
    MODEL = "model", "one model"
    # What a move Quorum made changed, recorded by its transition job from the move's answer
    # (`registry.sync.mirror_move`): it reads nothing else from MLflow, so it is no sync of the
    # registry and says nothing of whether one would succeed.
    MOVE = "move", "a move Quorum made"


class SyncRunQuerySet(models.QuerySet["SyncRun"]):
    def finished(self) -> Self:
        """Syncs that read MLflow and finished; a move's record (`SyncKind.MOVE`) is none: a
        transition that succeeds while every sync fails must not look like a mirror in step."""
        return self.filter(finished_at__isnull=False).exclude(kind=SyncKind.MOVE)

    def succeeded(self) -> Self:
        return self.finished().filter(error="")

    def failed(self) -> Self:
        return self.finished().exclude(error="")


SKIPPED_KEPT = 500


class SyncRun(models.Model):
    """One sync's record: what it looked at, what it changed, how long it took, or why it failed.

    Syncs are serialised by `SyncLock`, not by these rows (see `registry.sync`).
    """

    kind = models.CharField(max_length=16, choices=SyncKind.choices)
    model_name = models.CharField(max_length=256, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    models_seen = models.PositiveIntegerField(default=0)
    versions_seen = models.PositiveIntegerField(default=0)
    changes_count = models.PositiveIntegerField(default=0)
    mlflow_calls = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # Models and versions this sync could not mirror: [{"model", "version", "reason"}, ...], the
    # first SKIPPED_KEPT of them; `skipped_count` counts them all.
    skipped = models.JSONField(default=list, blank=True)
    skipped_count = models.PositiveIntegerField(default=0)

    objects = SyncRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["-finished_at"], name="syncrun_finished")]

    def __str__(self) -> str:
        return f"{self.kind} sync at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return self.finished_at is not None and not self.error


class SyncLock(models.Model):
    """A single row locked with SELECT ... FOR UPDATE so two syncs never interleave their writes."""

    name = models.CharField(max_length=32, primary_key=True)

    def __str__(self) -> str:
        return self.name


class EvidenceStatus(models.TextChoices):
    READ = "read", "read"
    UNREADABLE = "unreadable", "unreadable"


class VersionEvidence(models.Model):
    """What a version's artifacts and run say besides metrics, read once by a worker.

    Versions are immutable in MLflow, so this is fetched when the version is first mirrored and
    never again (`registry.evidence`). A part MLflow could not give is named in `problems` with
    the reason: it is unknown, never "no change".
    """

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="evidence")
    status = models.CharField(max_length=16, choices=EvidenceStatus.choices)
    # {"inputs": [{"name", "type", "required", "shape"}], "outputs": [...], "params": [...]};
    # null when the model was logged without a signature.
    signature = models.JSONField(null=True, blank=True)
    python_version = models.CharField(max_length=32, blank=True, default="")
    requirements = models.JSONField(default=list, blank=True)
    flavors = models.JSONField(default=list, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    datasets = models.JSONField(default=list, blank=True)
    dataset_metrics = models.JSONField(default=dict, blank=True)
    problems = models.JSONField(default=dict, blank=True)  # part -> why it could not be read
    digest = models.CharField(max_length=64)
    fetched_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"evidence of {self.version_id}: {self.status}"


class ContentState(models.TextChoices):
    KNOWN = "known", "known"
    UNKNOWN = "unknown", "unknown"


class VersionContent(models.Model):
    """A version's content digest: the manifest of its model files (sha256 each) and one digest
    over it, read by a worker from MLflow's artifacts (`registry.content`).

    Read when the version is first mirrored and again when its source changes, never because the
    bytes might have changed: this is what Quorum saw, and checking the bytes against it later is
    the job of whatever relies on them. `unknown` keeps the reason the files could not be read;
    nothing that needs the content passes then.
    """

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="content")
    state = models.CharField(max_length=16, choices=ContentState.choices)
    # Quorum's content digest (quorum_cli.manifest: names and bytes); "" when unknown.
    digest = models.CharField(max_length=64, blank=True, default="")
    # The digest an OpenSSF model_signing signature of the same files names as its subject.
    model_signing_digest = models.CharField(max_length=64, blank=True, default="")
    # [{"path", "sha256", "size"}, ...] in the manifest's canonical order.
    files = models.JSONField(default=list, blank=True)
    file_count = models.PositiveIntegerField(default=0)
    total_size = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")  # why it is unknown
    # The version's source when its files were read: another source means other files.
    source = models.TextField(blank=True, default="")
    # The artifact URI the files were read from ("" when MLflow could not say).
    location = models.TextField(blank=True, default="")
    seconds = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"content of {self.version_id}: {self.digest or self.state}"

    @property
    def known(self) -> bool:
        return self.state == ContentState.KNOWN
