"""Who held each target when: replayed from the mirror's changes of a real MLflow, through Quorum
transitions, moves made in MLflow directly and deletions; the API that answers "what held
Production at T"; the model page's timeline, and its query budget whatever the history's length."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.holdings import holder_timeline
from registry.models import ChangeKind, ModelVersion, RegisteredModel, RegistryChange
from registry.sync import sync_registry
from reviews.api.auth import token_create
from reviews.decisions import opening
from reviews.emergency.rollback import rollback_preview
from reviews.errors import QuorumError
from reviews.insight.holder_history import holder_history
from tests.factories import approve_all, make_model, make_version

pytestmark = pytest.mark.django_db


def test_held_at_follows_quorum_moves_out_of_band_moves_and_deletions(
    promoted, approved, mlflow_client, transitions, syncs, simple_worker, lead, client
):
    model = RegisteredModel.objects.get(name=promoted)
    before_mirroring = model.changes.order_by("observed_at").first().observed_at - timedelta(
        seconds=1
    )
    t_first = timezone.now()  # v1 was in Production before Quorum first synced

    request = approved(3, "Production")
    simple_worker(transitions, syncs)
    t_quorum = timezone.now()

    mlflow_client.transition_stage(promoted, 2, "Production", archive_existing=True)
    sync_registry(model=promoted, client=mlflow_client)
    t_out_of_band = timezone.now()

    mlflow_client.delete_version(promoted, 2)
    sync_registry(model=promoted, client=mlflow_client)
    t_deleted = timezone.now()

    history = holder_history(model)
    assert history.held_at("Production", before_mirroring) is None  # unknown, not "nothing"
    assert history.held_at("Production", t_first) == [1]
    assert history.held_at("Production", t_quorum) == [3]
    assert history.held_at("Production", t_out_of_band) == [2]
    assert history.held_at("Production", t_deleted) == []

    first, by_quorum, out_of_band = history.of("Production")
    assert (first.holding.version, first.holding.start_seen) == (1, False)
    assert first.began.kind == "first_seen"
    assert first.holding.replaced_by == [3] and first.holding.end_reason == "moved"
    assert first.ended_by is not None and first.ended_by.request_id == request.pk
    assert by_quorum.began.kind == "promotion" and by_quorum.began.request_id == request.pk
    assert by_quorum.began.requester == "requester"
    assert sorted(by_quorum.began.approvers) == ["lead", "scientist1", "scientist2"]
    assert by_quorum.holding.replaced_by == [2]
    assert out_of_band.began.kind == "out_of_band"
    assert out_of_band.holding.end_reason == "deleted" and out_of_band.holding.replaced_by == []

    # The same answers over the API.
    token = token_create(user=lead, name="test")[1]
    url = f"/api/v1/models/{promoted}/timeline"
    headers = {"Authorization": f"Bearer {token}"}

    def held_by(at):
        answer = client.get(url, {"target": "Production", "at": at.isoformat()}, headers=headers)
        assert answer.status_code == 200, answer.content
        return answer.json()["held_by"]

    assert held_by(before_mirroring) is None
    assert held_by(t_first) == [1]
    assert held_by(t_quorum) == [3]
    assert held_by(t_out_of_band) == [2]
    assert held_by(t_deleted) == []
    whole = client.get(url, headers=headers).json()
    assert [(h["target"], h["version"]) for h in whole["holdings"]] == [
        ("Production", 1),
        ("Production", 3),
        ("Production", 2),
    ]
    assert whole["holdings"][1]["began"]["kind"] == "promotion"
    assert whole["holdings"][1]["began"]["request"] == request.pk
    assert whole["mirrored_since"] is not None


def test_a_holding_quorum_made_is_in_the_timeline_before_any_sync_runs(
    promoted, requester, scientist1, lead, scientist2, mlflow_client, transitions, syncs,
    simple_worker, django_capture_on_commit_callbacks,
):  # fmt: skip
    """Quorum moves v2 to Staging and then to Production with no sync in between: one later sync
    would see "None -> Production" and the Staging holding would be missing, so that a rollback of
    Staging to v2 was refused ("v2 has not held Staging") although Quorum put it there."""
    model = RegisteredModel.objects.get(name=promoted)
    to_staging = opening.request_create(
        model=promoted, version=2, target="Staging", requester=requester
    )
    approve_all(to_staging, scientist1, capture=django_capture_on_commit_callbacks)
    simple_worker(transitions)  # the move, and no follow-up sync yet
    assert mlflow_client.get_version(promoted, 2).stage == "Staging"
    to_production = opening.request_create(
        model=promoted, version=2, target="Production", requester=requester
    )
    approve_all(
        to_production, lead, scientist1, scientist2, capture=django_capture_on_commit_callbacks
    )
    simple_worker(transitions)
    simple_worker(syncs)  # the follow-up syncs, after both moves

    history = holder_history(model)
    [staging] = history.of("Staging")
    assert (staging.holding.version, staging.holding.start_seen) == (2, True)
    assert staging.began.kind == "promotion" and staging.began.request_id == to_staging.pk
    assert staging.holding.end is not None and staging.ended_by is not None
    assert staging.ended_by.request_id == to_production.pk
    assert history.of("Production")[-1].began.request_id == to_production.pk
    moves = RegistryChange.objects.filter(
        model=model, version__version=2, kind=ChangeKind.STAGE_CHANGED
    ).order_by("id")
    assert [(c.old, c.new, c.origin) for c in moves] == [
        ("None", "Staging", "quorum"),
        ("Staging", "Production", "quorum"),
    ]
    to_staging.refresh_from_db()
    assert to_staging.awaiting_mirror is False  # mirrored by its own job

    # What refused the rollback before: v2 not seen to have held Staging.
    try:
        rollback_preview(model=promoted, target="Staging", to_version="2")
    except QuorumError as error:
        assert "has not held" not in str(error)


def test_alias_moves_are_holdings_of_the_alias(promoted, mlflow_client):
    mlflow_client.set_alias(promoted, "champion", 1)
    sync_registry(model=promoted, client=mlflow_client)
    t_one = timezone.now()
    mlflow_client.set_alias(promoted, "champion", 2)
    sync_registry(model=promoted, client=mlflow_client)
    t_two = timezone.now()
    mlflow_client.delete_alias(promoted, "champion")
    sync_registry(model=promoted, client=mlflow_client)

    timeline = holder_timeline(RegisteredModel.objects.get(name=promoted))
    assert timeline.targets() == ["Production", "@champion"]
    assert timeline.held_at("@champion", t_one) == [1]
    assert timeline.held_at("@champion", t_two) == [2]
    assert timeline.held_at("@champion", timezone.now()) == []
    one, two = timeline.of("@champion")
    assert one.replaced_by == [2] and two.end_reason == "moved" and two.replaced_by == []
    # The most recent holder that left by a move: what a rollback of @champion would restore.
    assert timeline.previous("@champion").version == 2


def test_api_refuses_an_unknown_model_and_a_bad_target(lead, client):
    make_model("known")
    headers = {"Authorization": f"Bearer {token_create(user=lead, name='t')[1]}"}
    missing = client.get("/api/v1/models/nope/timeline", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_model"
    bad = client.get("/api/v1/models/known/timeline", {"target": "Prod"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_target"
    bad_time = client.get("/api/v1/models/known/timeline", {"at": "yesterday"}, headers=headers)
    assert bad_time.status_code == 400
    anonymous = client.get("/api/v1/models/known/timeline")
    assert anonymous.status_code == 401


# The rollback offer also says what it will take (reviews.decisions.sizing): the policies, once,
# and the version it would put back.
MODEL_PAGE_QUERIES = 12


def _long_history(model: RegisteredModel, moves: int) -> None:
    """`moves` Production hand-overs between two versions, recorded as a sync records them."""
    a = make_version(model, 1, stage="Production")
    b = make_version(model, 2)
    RegistryChange.objects.create(model=model, kind=ChangeKind.MODEL_CREATED)
    RegistryChange.objects.create(
        model=model,
        version=a,
        kind=ChangeKind.VERSION_CREATED,
        new={"stage": "Production", "aliases": []},
    )
    rows = []
    for i in range(moves):
        leaving, arriving = (a, b) if i % 2 == 0 else (b, a)
        rows.append(
            RegistryChange(
                model=model,
                version=leaving,
                kind=ChangeKind.STAGE_CHANGED,
                old="Production",
                new="Archived",
            )
        )
        rows.append(
            RegistryChange(
                model=model,
                version=arriving,
                kind=ChangeKind.STAGE_CHANGED,
                old="Archived",
                new="Production",
            )
        )
    RegistryChange.objects.bulk_create(rows)
    final = a if moves % 2 == 0 else b
    ModelVersion.objects.filter(pk=final.pk).update(stage="Production")
    ModelVersion.objects.exclude(pk=final.pk).filter(model=model).update(stage="Archived")


@pytest.mark.parametrize("moves", [2, 200])
def test_model_page_shows_the_timeline_in_a_fixed_number_of_queries(
    client, lead, moves, django_assert_max_num_queries
):
    model = make_model("churn")
    _long_history(model, moves)
    client.force_login(lead)
    # test_views_registry's budget for the model page, plus the changes' origins and the
    # requests behind them (none here: hand-overs observed without a request).
    with django_assert_max_num_queries(MODEL_PAGE_QUERIES):
        page = client.get(reverse("registry:model_detail", args=["churn"]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="holder-timeline"' in html and 'id="chart-holders"' in html
    assert "holds it now" in html
    if moves > 20:
        assert f"of {moves + 1} holdings" in html


def test_a_holding_break_glass_began_says_break_glass_once(
    client, world, outsider, lead, no_mlflow
):
    """fraud v2 moved to Production by break glass, as the sync then records it."""
    from reviews.emergency.break_glass import break_glass_move
    from reviews.policies.loading import policies_load
    from tests.policy_files import policies_with

    policies_load(text=policies_with(break_glass="ratify_within: 1h, on_unratified: alert"))
    move = break_glass_move(
        model="fraud", version=2, target="Production", user=outsider, reason="INC-7"
    )
    model = world.model
    v1, v2 = model.versions.get(version=1), model.versions.get(version=2)
    RegistryChange.objects.create(model=model, kind=ChangeKind.MODEL_CREATED)
    for version, stage in ((v1, "Production"), (v2, "None")):
        RegistryChange.objects.create(
            model=model,
            version=version,
            kind=ChangeKind.VERSION_CREATED,
            new={"stage": stage, "aliases": []},
        )
    move.caused_changes.add(
        RegistryChange.objects.create(
            model=model, version=v1, kind=ChangeKind.STAGE_CHANGED, old="Production", new="Archived"
        ),
        RegistryChange.objects.create(
            model=model, version=v2, kind=ChangeKind.STAGE_CHANGED, old="None", new="Production"
        ),
    )
    ModelVersion.objects.filter(pk=v1.pk).update(stage="Archived")
    ModelVersion.objects.filter(pk=v2.pk).update(stage="Production")

    client.force_login(lead)
    page = client.get(reverse("registry:model_detail", args=["fraud"])).content.decode()

    holding = page[page.index('data-version="2"') :]
    holding = holding[: holding.index("</li>")]
    words = " ".join(re.sub(r"<[^>]+>", " ", holding).split())
    assert words.count("break glass") == 1
    assert f"break glass #{move.pk} by outsider" in words
