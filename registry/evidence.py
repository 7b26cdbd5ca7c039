"""The evidence packet: what a version's artifacts and run say besides metrics.

Signature (input, output and params schema), environment (Python, pip requirements, flavors,
size) and data (the datasets its run logged, and an MLflow 3 LoggedModel's metrics per dataset).

Versions are immutable in MLflow, so each version's evidence is read once, by a worker, after
the sync first mirrors it (`registry.jobs.on_new_versions`, one coalesced job for every version
still waiting), and stored in `VersionEvidence`. Pages read only the mirror: they never wait on
MLflow. A version whose artifacts MLflow cannot give keeps the reason, and comparisons say
"unknown", never "no change".
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.dispatch import Signal

from .mlflow_client import MlflowError, MlflowEvidence, RegistryClient
from .models import EvidenceStatus, ModelVersion, VersionEvidence
from .reading_pool import read_each

logger = logging.getLogger(__name__)

# Versions read per job: a job that ends in minutes leaves the queue for the others; the job
# queues its own successor while versions remain.
FETCH_BATCH = 200
# Sent after a batch of evidence is stored, with `version_ids`, so the review app can decide
# again what the open requests on those versions need.
evidence_stored = Signal()

# The parts whose change the digest (and so a vote) notices.
DIGESTED = ("signature", "requirements", "python_version", "datasets")


def digest_of(parts: dict) -> str:
    """A stable hash of the parts a reviewer approves: signature, requirements and datasets."""
    canonical = json.dumps({k: parts.get(k) for k in DIGESTED}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def store(version: ModelVersion, read: MlflowEvidence) -> VersionEvidence:
    """Keeps what MLflow gave for `version` (once: a second call changes nothing)."""
    parts = {
        "signature": read.signature,
        "python_version": read.python_version,
        "requirements": read.requirements,
        "flavors": read.flavors,
        "size_bytes": read.size_bytes,
        "datasets": read.datasets,
        "dataset_metrics": read.dataset_metrics,
        "problems": read.problems,
    }
    evidence, _ = VersionEvidence.objects.get_or_create(
        version=version,
        defaults={
            **parts,
            "status": EvidenceStatus.UNREADABLE if read.problems else EvidenceStatus.READ,
            "digest": digest_of(parts),
        },
    )
    return evidence


def fetch_missing(
    *, client: RegistryClient | None = None, limit: int = FETCH_BATCH, readers: int | None = None
) -> int:
    """Reads and stores the evidence of up to `limit` mirrored versions that have none yet, with
    `readers` threads (QUORUM_VERSION_READERS); returns how many were stored. MLflow being
    unreachable stops the batch (raises) after storing what was read before it."""
    client = client or RegistryClient()
    waiting = list(
        ModelVersion.objects.live()
        .filter(evidence__isnull=True)
        .select_related("model")
        .order_by("pk")[:limit]
    )
    stored: list[int] = []
    try:
        for version, read in read_each(
            client, waiting, _read, readers=readers or settings.QUORUM_VERSION_READERS
        ):
            store(version, read)
            stored.append(version.pk)
    finally:
        if stored:
            with transaction.atomic():
                evidence_stored.send(sender=VersionEvidence, version_ids=stored)
    return len(stored)


def _read(client: RegistryClient, version: ModelVersion) -> MlflowEvidence:
    """One version's evidence from MLflow (in a reader thread: no database here)."""
    try:
        return client.get_evidence(version.model.name, version.version, version.run_id)
    except MlflowError as error:
        if error.unreachable:
            raise
        return unreadable(str(error))


def unreadable(reason: str) -> MlflowEvidence:
    return MlflowEvidence(
        signature=None,
        python_version="",
        requirements=[],
        flavors=[],
        size_bytes=None,
        datasets=[],
        dataset_metrics={},
        problems={"model": reason},
    )


def evidence_of(version: ModelVersion | None) -> VersionEvidence | None:
    """`version`'s evidence, None when it has not been read (loaded with the version by
    `select_related("evidence")` where a page shows it)."""
    if version is None:
        return None
    try:
        return version.evidence
    except ObjectDoesNotExist:
        return None


def waiting_count() -> int:
    return ModelVersion.objects.live().filter(evidence__isnull=True).count()


# -- comparing two versions' evidence ----------------------------------------------------------


@dataclass
class SchemaChange:
    text: str
    breaking: bool


@dataclass
class EvidenceComparison:
    """The candidate's evidence against the current holder's, in words and in flags.

    A flag is None when it cannot be known (either side's evidence is missing or unreadable).
    """

    candidate: VersionEvidence | None
    baseline: VersionEvidence | None
    unknown: list[str] = field(default_factory=list)  # why flags could not be decided
    signature_changes: list[SchemaChange] = field(default_factory=list)
    requirement_changes: list[str] = field(default_factory=list)
    environment_changes: list[str] = field(default_factory=list)
    dataset_warning: str = ""
    signature_breaking: bool | None = None
    signature_changed: bool | None = None
    requirements_changed: bool | None = None
    dataset_changed: bool | None = None

    def flags(self) -> dict[str, bool | None]:
        return {
            "signature_breaking": self.signature_breaking,
            "signature_changed": self.signature_changed,
            "requirements_changed": self.requirements_changed,
            "dataset_changed": self.dataset_changed,
        }


FLAGS = ("signature_breaking", "signature_changed", "requirements_changed", "dataset_changed")


def compare(
    candidate: VersionEvidence | None, baseline: VersionEvidence | None
) -> EvidenceComparison:
    """What changed from `baseline` (the target's holder, or None) to `candidate`."""
    result = EvidenceComparison(candidate, baseline)
    if candidate is None:
        result.unknown.append("the candidate's evidence has not been read from MLflow yet")
        return result
    if baseline is None:
        # Nothing holds the target: nothing to compare with, nothing changed against it.
        result.signature_breaking = result.signature_changed = False
        result.requirements_changed = result.dataset_changed = False
        return result
    sides = (("candidate", candidate), ("baseline", baseline))
    for label, side in sides:
        for part, why in side.problems.items():
            result.unknown.append(f"the {label}'s {part}: {why}")
    if not {"model", "signature"} & (candidate.problems.keys() | baseline.problems.keys()):
        result.signature_changes = signature_diff(baseline.signature, candidate.signature)
        result.signature_changed = bool(result.signature_changes)
        result.signature_breaking = any(c.breaking for c in result.signature_changes)
    if not {"model", "requirements"} & (candidate.problems.keys() | baseline.problems.keys()):
        result.requirement_changes = requirements_diff(
            baseline.requirements, candidate.requirements
        )
        if baseline.python_version != candidate.python_version:
            result.requirement_changes.insert(
                0, f"Python {baseline.python_version or '?'} → {candidate.python_version or '?'}"
            )
        result.requirements_changed = bool(result.requirement_changes)
    if not {"datasets"} & (candidate.problems.keys() | baseline.problems.keys()):
        result.dataset_changed = _dataset_keys(candidate.datasets) != _dataset_keys(
            baseline.datasets
        )
        evaluated = _dataset_keys(candidate.datasets, "evaluation")
        was_evaluated = _dataset_keys(baseline.datasets, "evaluation")
        if evaluated and was_evaluated and evaluated != was_evaluated:
            result.dataset_warning = (
                "The two versions were evaluated on different datasets: "
                "their metrics are not comparable."
            )
        elif bool(evaluated) != bool(was_evaluated):
            which = "candidate" if not evaluated else "current holder"
            result.dataset_warning = (
                f"Only one run logged its evaluation dataset (the {which}'s did not): whether "
                "the metrics are comparable cannot be told."
            )
    if {"model"} & (candidate.problems.keys() | baseline.problems.keys()):
        return result  # flavors and size come from the MLmodel file: unknown on either side
    if set(baseline.flavors) != set(candidate.flavors):
        was, now = ", ".join(baseline.flavors) or "none", ", ".join(candidate.flavors) or "none"
        result.environment_changes.append(f"flavors {was} → {now}")
    if baseline.size_bytes and candidate.size_bytes:
        ratio = candidate.size_bytes / baseline.size_bytes
        if ratio >= 1.5 or ratio <= 1 / 1.5:
            result.environment_changes.append(
                f"size {human_size(baseline.size_bytes)} → {human_size(candidate.size_bytes)}"
                f" (×{ratio:.1f})"
            )
    return result


def _dataset_keys(datasets: list[dict], context: str | None = None) -> set[tuple[str, str]]:
    return {
        (d.get("name", ""), d.get("digest", ""))
        for d in datasets
        if context is None or d.get("context") == context
    }


def signature_diff(old: dict | None, new: dict | None) -> list[SchemaChange]:
    """Column by column, what changed from the `old` signature to the `new` one."""
    if old is None and new is None:
        return []
    if old is None:
        return [SchemaChange("signature added (the holder had none)", breaking=False)]
    if new is None:
        return [SchemaChange("signature removed: inputs are no longer checked", breaking=True)]
    changes = []
    for part, label in (("inputs", "column"), ("outputs", "output"), ("params", "param")):
        before = {c["name"]: c for c in old.get(part) or []}
        after = {c["name"]: c for c in new.get(part) or []}
        for name, column in before.items():
            if name not in after:
                # An input the caller still sends is refused; a missing output breaks readers.
                changes.append(SchemaChange(f"{label} `{name}` removed", breaking=True))
                continue
            now = after[name]
            if column["type"] != now["type"]:
                changes.append(
                    SchemaChange(
                        f"type of {label} `{name}` changed {column['type']} → {now['type']}",
                        breaking=True,
                    )
                )
            if column.get("shape") != now.get("shape"):
                changes.append(
                    SchemaChange(
                        f"shape of {label} `{name}` changed "
                        f"{column.get('shape')} → {now.get('shape')}",
                        breaking=True,
                    )
                )
            if column["required"] != now["required"]:
                became = "required" if now["required"] else "optional"
                changes.append(
                    SchemaChange(
                        f"{label} `{name}` became {became}",
                        breaking=part == "inputs" and now["required"],
                    )
                )
        for name, column in after.items():
            if name not in before:
                required = column["required"] and part == "inputs"
                changes.append(
                    SchemaChange(
                        f"added {'required' if column['required'] else 'optional'} {label} `{name}`"
                        f" ({column['type']})",
                        breaking=required,
                    )
                )
    for change in changes:
        if change.breaking:
            change.text = "breaking: " + change.text
    return changes


@dataclass
class SignatureRow:
    """One column of a signature as the evidence table shows it: `status` is "same", "changed",
    "added" or "removed" against the holder's (None: nothing to compare with); `was` says what
    a changed column was."""

    part: str
    name: str
    type: str
    shape: object
    required: bool
    status: str | None
    was: str = ""

    @property
    def changed(self) -> bool:
        return self.status not in (None, "same")


def signature_rows(old: dict | None, new: dict | None) -> list[SignatureRow]:
    """The candidate's (`new`) columns, and the holder's (`old`) that it dropped, with what
    changed of each: changed, added and removed columns first, in signature order, then the
    rest. Without `old` (no holder, or no signature there) every row's status is None."""
    changes: list[SignatureRow] = []
    same: list[SignatureRow] = []
    for part in ("inputs", "outputs", "params"):
        before = {c["name"]: c for c in (old or {}).get(part) or []}
        for column in (new or {}).get(part) or []:
            row = SignatureRow(
                part,
                column["name"],
                column["type"],
                column.get("shape"),
                column["required"],
                status=None if old is None else "same",
            )
            earlier = before.get(column["name"])
            if old is not None and earlier is None:
                row.status = "added"
            elif earlier is not None:
                was = [
                    f"{what} {earlier.get(key)}"
                    for key, what in (("type", "type"), ("shape", "shape"))
                    if earlier.get(key) != column.get(key)
                ]
                if earlier["required"] != column["required"]:
                    was.append("required" if earlier["required"] else "optional")
                if was:
                    row.status, row.was = "changed", "was " + ", ".join(was)
            (changes if row.changed else same).append(row)
        names = {c["name"] for c in (new or {}).get(part) or []}
        for name, column in before.items():
            if name not in names:
                changes.append(
                    SignatureRow(
                        part,
                        name,
                        column["type"],
                        column.get("shape"),
                        column["required"],
                        status="removed",
                    )
                )
    return changes + same


def _pin(line: str) -> tuple[str, str]:
    for operator in ("===", "==", ">=", "<=", "~=", "!=", ">", "<"):
        if operator in line:
            name, _, rest = line.partition(operator)
            return name.strip().lower(), operator + rest.strip()
    return line.strip().lower(), ""


def requirements_diff(old: list[str], new: list[str]) -> list[str]:
    """Added, removed and changed pins, by package name."""
    before = dict(_pin(line) for line in old)
    after = dict(_pin(line) for line in new)
    changes = []
    for name in sorted(before.keys() | after.keys()):
        if name not in after:
            changes.append(f"removed {name}{before[name]}")
        elif name not in before:
            changes.append(f"added {name}{after[name]}")
        elif before[name] != after[name]:
            changes.append(
                f"changed {name} {before[name] or 'unpinned'} → {after[name] or 'unpinned'}"
            )
    return changes


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
