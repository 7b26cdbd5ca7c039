"""A database migrated by the previous release upgrades to this one, its rows kept.

The migrations run for real, backwards to the previous release's last migration of each app and
forwards again, on the suite's database (PostgreSQL in `make test`). When a release adds a
migration, PREVIOUS_RELEASE moves to the last one of the release before it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from registry.models import ModelVersion
from reviews.models import Decision, TransitionRequest, Vote, VoteChoice

# The last migration of each app in the release before this one.
PREVIOUS_RELEASE = [
    ("registry", "0005_evidence"),
    ("reviews", "0014_rollback_break_glass"),
    ("identity", "0001_initial"),
]


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


def latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_a_database_of_the_previous_release_upgrades_with_its_requests_and_votes():
    old = migrate(PREVIOUS_RELEASE).loader.project_state(PREVIOUS_RELEASE).apps
    user = old.get_model("auth", "User").objects.create(username="alice")
    model = old.get_model("registry", "RegisteredModel").objects.create(name="fraud")
    version = old.get_model("registry", "ModelVersion").objects.create(
        model=model, version=3, run_id="run-3"
    )
    request = old.get_model("reviews", "TransitionRequest").objects.create(
        version=version,
        target="Production",
        requester=user,
        comment="before the upgrade",
        expires_at=timezone.now() + timedelta(days=7),
    )
    old.get_model("reviews", "Vote").objects.create(
        request=request, user=user, decision=VoteChoice.APPROVE
    )

    migrate(latest())

    upgraded = TransitionRequest.objects.get(pk=request.pk)
    assert upgraded.comment == "before the upgrade"
    assert upgraded.decision == Decision.PENDING
    assert upgraded.version == ModelVersion.objects.get(model__name="fraud", version=3)
    vote = Vote.objects.get(request=upgraded)
    assert (vote.user.username, vote.decision) == ("alice", VoteChoice.APPROVE)


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_can_be_undone_to_the_previous_release_and_done_again():
    migrate(PREVIOUS_RELEASE)
    migrate(latest())

    assert not MigrationExecutor(connection).migration_plan(latest())
