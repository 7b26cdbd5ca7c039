"""Quorum pins a version while a request for it is open (`quorum.pinned`, written by
`reviews.execution.guard` through the guard-tag refresh), and the guard inside a real
`mlflow server --app-name quorum-guard` keeps a pinned version's files still."""

from __future__ import annotations

import json

import pytest
import requests

from registry.jobs import SYNC_QUEUE
from registry.models import ModelVersion
from registry.sync import sync_registry
from reviews.decisions import deciding, opening
from reviews.execution.guard import PINNED_TAG, guard_pins_reconcile, pin_value
from tests.mlflow_registry import mlflow_of, register_in_mlflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def candidate(token_guard, as_quorum, unique_name, policies):
    """v1 in Production, v2 the candidate, mirrored and tagged on a guarded MLflow."""
    client = as_quorum(token_guard)
    register_in_mlflow(client, unique_name, versions=2)
    client.transition_stage(unique_name, 1, "Production")
    sync_registry(model=unique_name, client=client)  # also records that MLflow is guarded
    return client


def swap_file(guarded, client, name: str, version: int):
    """alice (no credentials) overwrites a file of the version's run artifacts."""
    run_id = client.get_version(name, version).run_id
    location = mlflow_of(client).get_run(run_id).info.artifact_uri
    root = location.removeprefix("mlflow-artifacts:").strip("/")
    url = f"{guarded.url}/api/2.0/mlflow-artifacts/artifacts/{root}/model/model.pkl"
    return requests.put(url, data=b"swapped", timeout=30)


def test_a_request_pins_its_version_until_it_closes(
    token_guard,
    candidate,
    unique_name,
    requester,
    rq_queue,
    simple_worker,
    django_capture_on_commit_callbacks,
):
    syncs = rq_queue(SYNC_QUEUE)
    with django_capture_on_commit_callbacks(execute=True):
        request = opening.request_create(
            model=unique_name, version=2, target="Production", requester=requester
        )
    simple_worker(syncs)  # the guard-tag refresh: a sync that ends by writing the tags

    pinned = candidate.get_version(unique_name, 2).tags[PINNED_TAG]
    assert json.loads(pinned) == {"requests": [request.pk]}
    assert PINNED_TAG not in candidate.get_version(unique_name, 1).tags
    refused = swap_file(token_guard, candidate, unique_name, 2)
    assert refused.status_code == 403 and "open request in Quorum" in refused.json()["message"]

    with django_capture_on_commit_callbacks(execute=True):
        deciding.request_cancel(request_id=request.pk, user=requester)
    simple_worker(syncs)

    assert PINNED_TAG not in candidate.get_version(unique_name, 2).tags
    assert swap_file(token_guard, candidate, unique_name, 2).status_code == 200


def test_pins_follow_the_open_requests_and_cost_nothing_when_in_step(
    candidate, unique_name, requester
):
    first = opening.request_create(
        model=unique_name, version=2, target="Production", requester=requester
    )
    second = opening.request_create(
        model=unique_name, version=2, target="@champion", requester=requester
    )

    report = guard_pins_reconcile(client=candidate)

    assert f"{unique_name}/2" in report.written and not report.failed
    wanted = pin_value([first.pk, second.pk])
    assert candidate.get_version(unique_name, 2).tags[PINNED_TAG] == wanted
    mirror = ModelVersion.objects.get(model__name=unique_name, version=2)
    assert mirror.tags[PINNED_TAG] == wanted
    calls = candidate.calls
    assert guard_pins_reconcile(client=candidate).written == []
    assert candidate.calls == calls

    deciding.request_cancel(request_id=first.pk, user=requester)
    guard_pins_reconcile(client=candidate)
    assert candidate.get_version(unique_name, 2).tags[PINNED_TAG] == pin_value([second.pk])
    deciding.request_cancel(request_id=second.pk, user=requester)
    guard_pins_reconcile(client=candidate)
    assert PINNED_TAG not in candidate.get_version(unique_name, 2).tags


def test_the_pin_tag_is_the_one_the_guard_reads():
    from mlflow_quorum_guard import holds

    assert holds.PINNED_TAG == PINNED_TAG
