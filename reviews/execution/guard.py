"""Quorum's side of the guard inside MLflow (mlflow-quorum-guard/, docs/enforcement.md).

The guard refuses moves of protected stages and aliases by anyone but Quorum. What is protected
comes from Quorum's policies: every model a policy covers carries the registered-model tag
`quorum.protected`, a JSON object with the targets its policies cover and the page where a
promotion can be requested. The guard reads that tag from MLflow's own store, so it keeps working
while Quorum is down; only Quorum's service identity may write it.

After each successful sync Quorum asks the guard's probe route whether the registry is guarded and
whether Quorum's credentials are its service identity (`guard_probe_record`, kept in `GuardProbe`
for the settings page, `manage.py check` and the out-of-band mail). When they are, it makes the tag
on every mirrored model say what the policies say (`guard_tags_reconcile`): models a policy covers
get their targets, models that lost their last policy get an empty list. Writes happen only where
the mirror's tag differs, so a registry in step costs no MLflow call. On a registry without the
guard Quorum writes nothing.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from registry.mlflow_client import MlflowError, RegistryClient
from registry.models import ModelVersion, RegisteredModel, SyncRun

# The tags' names live with the registry, whose pages say what the tags mean; the guard reads
# them too (mlflow_quorum_guard), and tests/guard/test_protection.py and test_pins.py check
# that the names agree.
from registry.quorum_tags import PINNED_TAG, PROTECTED_TAG

from ..decisions import handoff
from ..models import ApprovalPolicy, GuardProbe, TransitionRequest

logger = logging.getLogger(__name__)


def protected_targets(model_name: str, policies: list[ApprovalPolicy]) -> list[str]:
    """Every target any policy covers for this model, sorted: what the guard must protect."""
    targets: set[str] = set()
    for policy in policies:
        if any(fnmatch.fnmatchcase(model_name, p) for p in policy.model_patterns):
            targets.update(policy.targets)
    return sorted(targets)


def guard_tag_value(model_name: str, targets: list[str]) -> str:
    """The tag's text: stable for equal content, so comparing texts finds what changed."""
    url = settings.QUORUM_BASE_URL + reverse("registry:model_detail", args=[model_name])
    # A version's page, where its promotion is requested: the guard's refusal names it. The
    # version is the address's last segment, so the template is that of version "1" cut there.
    one = settings.QUORUM_BASE_URL + reverse("registry:version_detail", args=[model_name, "1"])
    version_url = one.removesuffix("1/") + "{version}/"
    return json.dumps(
        {"request_url": url, "targets": targets, "version_url": version_url}, sort_keys=True
    )


@dataclass
class GuardTagReport:
    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def guard_tags_reconcile(*, client: RegistryClient | None = None) -> GuardTagReport:
    """Writes `quorum.protected` on every mirrored model whose tag differs from the policies.

    A model no policy covers and that never had the tag is left alone: the guard protects its
    default targets there. One model's failure does not stop the others; it is reported."""
    client = client or RegistryClient()
    policies = list(ApprovalPolicy.objects.all())
    report = GuardTagReport()
    for model in RegisteredModel.objects.live().only("name", "tags"):
        targets = protected_targets(model.name, policies)
        current = (model.tags or {}).get(PROTECTED_TAG)
        if not targets and current is None:
            continue
        wanted = guard_tag_value(model.name, targets)
        if current == wanted:
            continue
        try:
            client.set_model_tag(model.name, PROTECTED_TAG, wanted)
        except MlflowError as error:
            report.failed[model.name] = str(error)
            logger.warning("could not write %s on %s: %s", PROTECTED_TAG, model.name, error)
            continue
        # The mirror says what MLflow now holds, so the next run finds nothing to do.
        RegisteredModel.objects.filter(pk=model.pk).update(
            tags={**(model.tags or {}), PROTECTED_TAG: wanted}
        )
        report.written.append(model.name)
    return report


def pin_value(request_ids: list[int]) -> str:
    """The pin's text: the open requests of the version, stable for equal content."""
    return json.dumps({"requests": sorted(request_ids)}, sort_keys=True)


def guard_pins_reconcile(*, client: RegistryClient | None = None) -> GuardTagReport:
    """Writes `quorum.pinned` on every version with an open request and removes it from versions
    that have none left; only where the mirror's tag differs. One version's failure does not stop
    the others; it is reported ("model/version")."""
    client = client or RegistryClient()
    wanted: dict[int, list[int]] = {}
    for version_id, request_id in TransitionRequest.objects.open().values_list("version", "pk"):
        wanted.setdefault(version_id, []).append(request_id)
    report = GuardTagReport()
    versions = ModelVersion.objects.live().filter(
        models.Q(pk__in=wanted) | models.Q(tags__has_key=PINNED_TAG)
    )
    for version in versions.select_related("model"):
        tags = dict(version.tags or {})
        current = tags.get(PINNED_TAG)
        value = pin_value(wanted[version.pk]) if version.pk in wanted else None
        if current == value:
            continue
        where = f"{version.model.name}/{version.version}"
        try:
            if value is None:
                client.delete_version_tag(version.model.name, version.version, PINNED_TAG)
                tags.pop(PINNED_TAG, None)
            else:
                client.set_version_tag(version.model.name, version.version, PINNED_TAG, value)
                tags[PINNED_TAG] = value
        except MlflowError as error:
            report.failed[where] = str(error)
            logger.warning("could not write %s on %s: %s", PINNED_TAG, where, error)
            continue
        ModelVersion.objects.filter(pk=version.pk).update(tags=tags)
        report.written.append(where)
    return report


def guard_probe_record(*, client: RegistryClient | None = None) -> GuardProbe:
    """Asks the registry whether it is guarded, and keeps the answer (one row)."""
    client = client or RegistryClient()
    values = {
        "checked_at": timezone.now(),
        "tracking_uri": client.tracking_uri or "",
        "guarded": False,
        "version": "",
        "auth": "",
        "service_identity": False,
        "error": "",
    }
    try:
        status = client.guard_status()
    except MlflowError as error:
        values["error"] = str(error)
    else:
        if status is not None:
            values.update(
                guarded=True,
                version=status.version,
                auth=status.auth,
                service_identity=status.service_identity,
            )
    probe, _ = GuardProbe.objects.update_or_create(pk=1, defaults=values)
    return probe


def on_sync_finished(sender, sync_run: SyncRun, **kwargs) -> None:
    """After a successful sync the mirror is fresh: probe the guard, then bring the tags in step
    (only where the guard would accept Quorum's writes)."""
    if sync_run.error:
        return
    client = RegistryClient()
    probe = guard_probe_record(client=client)
    if probe.guarded and probe.service_identity:
        report = guard_tags_reconcile(client=client)
        if report.written:
            logger.info("wrote %s on %d models", PROTECTED_TAG, len(report.written))
        pins = guard_pins_reconcile(client=client)
        if pins.written:
            logger.info("changed %s on %d versions", PINNED_TAG, len(pins.written))


def on_policy_changed(sender, **kwargs) -> None:
    """A policy was saved or deleted: bring the tags in step (`handoff.guard_refresh_soon`)."""
    handoff.guard_refresh_soon()
