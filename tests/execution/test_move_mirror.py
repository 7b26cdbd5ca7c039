"""The transition job mirrors its own move before it lets go of the model: only the versions the
move changed, from what the job read and MLflow's answer to the move, credited to its request;
when it cannot, the follow-up sync does. A real `mlflow server`, a real worker in this process,
the real database."""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from registry.models import (
    ChangeKind,
    ModelVersion,
    RegisteredModel,
    RegistryChange,
    SyncKind,
    SyncRun,
)
from registry.sync import sync_registry
from reviews.decisions import opening
from reviews.insight.holder_history import holder_history
from reviews.models import AuditEvent, Execution
from tests.factories import approve_all, transition_actions

pytestmark = pytest.mark.django_db


def mirrored(name: str) -> dict[int, str]:
    return {v.version: v.stage for v in ModelVersion.objects.filter(model__name=name)}


def test_the_job_records_the_moved_and_the_archived_versions_credited_to_its_request(
    approved, promoted, mlflow_client, transitions, syncs, simple_worker
):
    mlflow_client.set_version_tag(promoted, 2, "reviewed", "no")  # in MLflow, no part of the move
    syncs_before = SyncRun.objects.exclude(kind=SyncKind.MOVE).count()
    request = approved(3, "Production")

    simple_worker(transitions)  # the move, its follow-up sync left queued

    assert mirrored(promoted) == {1: "Archived", 2: "None", 3: "Production"}
    request.refresh_from_db()
    assert request.execution == Execution.DONE and not request.awaiting_mirror
    caused = {(c.version.version, c.old, c.new, c.origin) for c in request.caused_changes.all()}
    assert caused == {(3, "None", "Production", "quorum"), (1, "Production", "Archived", "quorum")}
    # Recorded from the move alone: no sync read the model, and v2's tag is not seen yet.
    assert SyncRun.objects.exclude(kind=SyncKind.MOVE).count() == syncs_before
    record = SyncRun.objects.get(model_name=promoted, kind=SyncKind.MOVE)
    assert set(record.changes.values_list("version__version", flat=True)) == {1, 3}
    assert ModelVersion.objects.get(model__name=promoted, version=2).tags == {}

    simple_worker(syncs)

    assert ModelVersion.objects.get(model__name=promoted, version=2).tags == {"reviewed": "no"}
    moves = RegistryChange.objects.filter(model__name=promoted, kind=ChangeKind.STAGE_CHANGED)
    assert moves.count() == 2  # the sync found no move more
    assert not AuditEvent.objects.filter(action="registry.out_of_band").exists()


def test_an_alias_move_is_recorded_with_the_version_it_took_the_alias_from(
    approved, promoted, mlflow_client, transitions, simple_worker
):
    mlflow_client.set_alias(promoted, "champion", 1)
    sync_registry(model=promoted, client=mlflow_client)
    request = approved(2, "@champion")

    simple_worker(transitions)

    aliases = dict(
        ModelVersion.objects.filter(model__name=promoted).values_list("version", "aliases")
    )
    assert aliases == {1: [], 2: ["champion"], 3: []}
    caused = {(c.kind, c.version.version, c.origin) for c in request.caused_changes.all()}
    assert caused == {
        (ChangeKind.ALIAS_ADDED, 2, "quorum"),
        (ChangeKind.ALIAS_REMOVED, 1, "quorum"),
    }
    request.refresh_from_db()
    assert not request.awaiting_mirror


def test_a_move_the_job_cannot_mirror_is_mirrored_by_the_follow_up_sync(
    approved, promoted, mlflow_client, transitions, syncs, simple_worker, monkeypatch
):
    request = approved(3, "Production")

    with monkeypatch.context() as broken:
        # The database refuses the mirror's write, and only that: the move is made and recorded.
        def refuse(*args, **kwargs):
            raise DatabaseError("could not extend file: No space left on device")

        broken.setattr("registry.mirror.write", refuse)
        simple_worker(transitions)

    assert mlflow_client.get_version(promoted, 3).stage == "Production"
    request.refresh_from_db()
    assert (request.execution, request.execution_attempts) == (Execution.DONE, 1)
    assert transition_actions(request) == ["transition.started", "transition.done"]
    assert request.awaiting_mirror  # a sync will credit the move to it
    assert mirrored(promoted) == {1: "Production", 2: "None", 3: "None"}
    assert not SyncRun.objects.filter(kind=SyncKind.MOVE).exists()  # nothing half written

    simple_worker(syncs)

    assert mirrored(promoted) == {1: "Archived", 2: "None", 3: "Production"}
    caused = {(c.version.version, c.new, c.origin) for c in request.caused_changes.all()}
    assert caused == {(3, "Production", "quorum"), (1, "Archived", "quorum")}
    request.refresh_from_db()
    assert not request.awaiting_mirror
    assert not AuditEvent.objects.filter(action="registry.out_of_band").exists()


def test_staging_then_production_at_once_leaves_both_holdings_in_the_timeline(
    promoted, requester, scientist1, lead, scientist2, transitions, syncs, simple_worker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """v2 to Staging, then to Production, with no sync in between: each job's own mirror puts its
    holding in the timeline, so a rollback of Staging to v2 has a holding to go back to."""
    model = RegisteredModel.objects.get(name=promoted)
    capture = django_capture_on_commit_callbacks
    to_staging = opening.request_create(
        model=promoted, version=2, target="Staging", requester=requester
    )
    approve_all(to_staging, scientist1, capture=capture)
    simple_worker(transitions)
    to_production = opening.request_create(
        model=promoted, version=2, target="Production", requester=requester
    )
    approve_all(to_production, lead, scientist1, scientist2, capture=capture)
    simple_worker(transitions)  # the follow-up syncs still queued

    def timeline():
        history = holder_history(model)
        [staging] = history.of("Staging")
        production = history.of("Production")
        return {
            "staging": (
                staging.holding.version,
                staging.began.request_id,
                staging.ended_by.request_id if staging.ended_by else None,
            ),
            "production": [(p.holding.version, p.holding.end is None) for p in production],
            "by": production[-1].began.request_id,
        }

    before_syncs = timeline()
    assert before_syncs == {
        "staging": (2, to_staging.pk, to_production.pk),
        "production": [(1, False), (2, True)],
        "by": to_production.pk,
    }

    simple_worker(syncs)  # they find no move more

    assert timeline() == before_syncs
    moves = RegistryChange.objects.filter(
        model=model, version__version=2, kind=ChangeKind.STAGE_CHANGED
    ).order_by("id")
    assert [(c.old, c.new, c.origin) for c in moves] == [
        ("None", "Staging", "quorum"),
        ("Staging", "Production", "quorum"),
    ]
