"""What a TransitionRequest knows about its transition: the versions its move archives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.audit import chain
from reviews.models import TransitionRequest
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Listed:
    """A version as MLflow lists it."""

    version: int
    stage: str
    aliases: tuple[str, ...] = ()


LISTED = [
    Listed(1, "Production"),
    Listed(2, "None"),
    Listed(3, "Production"),
    Listed(4, "Staging"),
    Listed(5, "Archived"),
]


def make_request(requester, *, target="Production", archive_existing=True, number=2):
    model = make_model()
    version = make_version(model, number)
    return TransitionRequest.objects.create(
        version=version,
        target=target,
        requester=requester,
        policy_snapshot={"archive_existing": archive_existing},
        expires_at=timezone.now() + timedelta(days=1),
    )


def test_a_move_into_an_archiving_stage_archives_the_stages_other_versions(requester):
    request = make_request(requester)

    assert request.versions_to_archive(LISTED) == [1, 3]
    assert request.versions_to_archive(reversed(LISTED)) == [1, 3]


def test_a_version_already_in_the_stage_is_not_counted_as_archived_by_its_own_move(requester):
    request = make_request(requester, number=3)

    assert request.versions_to_archive(LISTED) == [1]


def test_nothing_is_archived_when_the_policy_does_not_archive(requester):
    assert make_request(requester, archive_existing=False).versions_to_archive(LISTED) == []


@pytest.mark.parametrize("target", ["Archived", "None", "@champion"])
def test_nothing_is_archived_by_a_move_where_mlflow_archives_nothing(requester, target):
    assert make_request(requester, target=target).versions_to_archive(LISTED) == []


def test_archived_versions_are_what_the_transition_job_recorded(requester):
    request = make_request(requester)
    assert request.archived_versions() == []  # not done yet

    chain.record("transition.started", request=request, details={"attempt": 1})
    chain.record(
        "transition.done",
        request=request,
        details={"already_at_target": False, "archived_versions": [1, 3]},
    )

    assert TransitionRequest.objects.get(pk=request.pk).archived_versions() == [1, 3]


def test_archived_versions_come_from_the_latest_record_of_the_move(requester):
    request = make_request(requester)
    chain.record("transition.done", request=request, details={"archived_versions": [1]})
    chain.record(
        "transition.done",
        request=request,
        details={"already_at_target": True, "archived_versions": []},
    )

    assert request.archived_versions() == []
