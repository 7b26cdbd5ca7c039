"""The guard inside a real `mlflow server --app-name quorum-guard`, alone and over basic-auth:
what MLflow refuses, what it leaves alone, and Quorum's worker carrying out an approved move."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from django.conf import settings
from django.urls import reverse

from registry.content import digest_missing
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.execution import jobs
from reviews.execution.guard import PROTECTED_TAG
from reviews.models import Execution, GuardProbe
from tests.mlflow_registry import register_in_mlflow
from tests.waiting import join_all

pytestmark = pytest.mark.django_db

AUTH_MODES = ["token", "basic-auth"]


@pytest.fixture(params=AUTH_MODES)
def guarded(request, guarded_mlflow_servers):
    return guarded_mlflow_servers(request.param)


def call(guarded, who: str, method: str, path: str, body: dict, *, ajax: bool = False):
    prefix = "/ajax-api" if ajax else "/api"
    return requests.request(
        method, f"{guarded.url}{prefix}/2.0/mlflow/{path}", json=body, timeout=30,
        **guarded.credentials(who),
    )  # fmt: skip


def transition(guarded, who, name, version, stage, *, ajax=False):
    body = {"name": name, "version": str(version), "stage": stage}
    body["archive_existing_versions"] = False
    return call(guarded, who, "POST", "model-versions/transition-stage", body, ajax=ajax)


def register_version(guarded, who: str, name: str):
    body = {"name": name, "source": "s3://models/weights"}
    return call(guarded, who, "POST", "model-versions/create", body)


def assert_refused(response, name: str):
    assert response.status_code == 403, response.text
    error = response.json()
    assert error["error_code"] == "PERMISSION_DENIED"
    assert "Quorum" in error["message"] and name in error["message"]
    return error["message"]


@pytest.fixture
def model(guarded, as_quorum, unique_name, policies):
    """A model registered by Quorum's identity with v1 in Production and v2, v3 new; mirrored
    and tagged from the standard policies (Production and @champion, Staging); alice has EDIT."""
    client = as_quorum(guarded)
    register_in_mlflow(client, unique_name, versions=3)
    client.transition_stage(unique_name, 1, "Production")
    client.set_alias(unique_name, "champion", 1)
    # The sync ends by probing the guard and writing the tag from the policies.
    sync_registry(model=unique_name, client=client)
    digest_missing(client=client)  # the digest job that follows a sync
    probe = GuardProbe.latest()
    assert probe.guarded and probe.service_identity, probe.summary
    tag = json.loads(client.get_model(unique_name).tags[PROTECTED_TAG])
    assert tag["targets"] == ["@champion", "Production", "Staging"]
    guarded.grant(unique_name)
    return unique_name


def stage_of(client, name: str, version: int) -> str:
    return client.get_version(name, version).stage


def test_user_with_edit_is_refused_moving_production_through_the_api_and_the_ui(
    guarded, model, as_quorum
):
    into = transition(guarded, "alice", model, 2, "Production")
    message = assert_refused(into, model)
    # The version's own page, where its promotion is requested, not only the model's.
    version_page = reverse("registry:version_detail", args=[model, 2])
    assert f"Request a promotion in Quorum: {settings.QUORUM_BASE_URL}{version_page}" in message
    assert_refused(transition(guarded, "alice", model, 2, "production", ajax=True), model)
    out_of = transition(guarded, "alice", model, 1, "Archived", ajax=True)
    assert_refused(out_of, model)

    client = as_quorum(guarded)
    assert [stage_of(client, model, v) for v in (1, 2)] == ["Production", "None"]


def test_user_is_refused_moving_a_protected_alias_or_deleting_what_holds_one(guarded, model):
    guarded.grant(model, "MANAGE")  # basic-auth's own rule: deleting needs MANAGE
    body = {"name": model, "alias": "champion", "version": "2"}
    message = assert_refused(call(guarded, "alice", "POST", "registered-models/alias", body), model)
    assert reverse("registry:version_detail", args=[model, 2]) in message
    body = {"name": model, "alias": "champion"}
    assert_refused(call(guarded, "alice", "DELETE", "registered-models/alias", body), model)
    body = {"name": model, "version": "1"}
    assert_refused(call(guarded, "alice", "DELETE", "model-versions/delete", body), model)
    assert_refused(
        call(guarded, "alice", "DELETE", "registered-models/delete", {"name": model}), model
    )  # noqa: E501
    body = {"name": model, "new_name": f"{model}-renamed"}
    assert_refused(call(guarded, "alice", "POST", "registered-models/rename", body), model)
    body = {"name": model, "key": PROTECTED_TAG, "value": '{"targets": []}'}
    response = call(guarded, "alice", "POST", "registered-models/set-tag", body)
    assert response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"


def test_registering_versions_tags_descriptions_and_unprotected_targets_are_untouched(
    guarded, model, as_quorum
):
    assert register_version(guarded, "alice", model).status_code == 200
    tag = {"name": model, "version": "2", "key": "reviewed-by", "value": "alice"}
    assert call(guarded, "alice", "POST", "model-versions/set-tag", tag).status_code == 200
    text = {"name": model, "version": "2", "description": "retrained on May data"}
    assert call(guarded, "alice", "PATCH", "model-versions/update", text).status_code == 200
    alias = {"name": model, "alias": "canary", "version": "3"}
    response = call(guarded, "alice", "POST", "registered-models/alias", alias, ajax=True)
    assert response.status_code == 200, response.text
    # Archived is no policy's target: moving a version that holds nothing protected is fine.
    guarded.grant(model, "MANAGE")  # basic-auth's own rule: deleting needs MANAGE
    assert transition(guarded, "alice", model, 3, "Archived").status_code == 200
    assert (
        call(
            guarded, "alice", "DELETE", "model-versions/delete", {"name": model, "version": "4"}
        ).status_code
        == 200
    )  # noqa: E501

    client = as_quorum(guarded)
    assert client.get_model(model).aliases == {"champion": 1, "canary": 3}
    assert stage_of(client, model, 3) == "Archived"


def test_quorum_worker_moves_production_after_quorum(
    guarded,
    model,
    requester,
    lead,
    scientist1,
    scientist2,
    rq_queue,
    simple_worker,
    django_capture_on_commit_callbacks,
    as_quorum,
):
    transitions = rq_queue(jobs.QUEUE)
    rq_queue("sync")
    request = opening.request_create(
        model=model, version=2, target="Production", requester=requester
    )  # noqa: E501
    with django_capture_on_commit_callbacks(execute=True):
        for voter in (lead, scientist1, scientist2):
            voting.vote_cast(request_id=request.pk, user=voter, decision="approve")

    simple_worker(transitions)

    request.refresh_from_db()
    assert request.execution == Execution.DONE, request.execution_error
    client = as_quorum(guarded)
    assert [stage_of(client, model, v) for v in (1, 2)] == ["Archived", "Production"]


def test_concurrent_refused_and_allowed_calls_leave_mlflow_in_the_approved_state(
    guarded, model, as_quorum
):
    """Quorum moves v3 into Production while alice keeps trying to move v3 out of the way (to
    Archived, which is unprotected while v3 holds nothing) and v2 into Production. Whatever the
    interleaving, v3 ends in Production: a check that passed cannot be overtaken by Quorum's move
    before the change it allowed."""
    quorum = as_quorum(guarded)
    answers: list[int] = []
    start = threading.Barrier(3, timeout=60)

    def alice(version: int, stage: str) -> None:
        start.wait()
        for _ in range(5):
            answers.append(transition(guarded, "alice", model, version, stage).status_code)

    def quorum_moves() -> None:
        start.wait()
        quorum.transition_stage(model, 3, "Production", archive_existing=True)

    threads = [
        threading.Thread(target=alice, args=(3, "Archived")),
        threading.Thread(target=alice, args=(2, "Production")),
        threading.Thread(target=quorum_moves),
    ]
    for thread in threads:
        thread.start()
    join_all(threads, timeout=60, message="alice's and Quorum's simultaneous moves")

    client = quorum
    assert stage_of(client, model, 3) == "Production"
    assert stage_of(client, model, 2) == "None"
    assert stage_of(client, model, 1) == "Archived"
    assert 403 in answers and set(answers) <= {200, 403}


def test_basic_auth_still_decides_who_may_edit_at_all(
    guarded_mlflow_servers, as_quorum, unique_name
):
    guarded = guarded_mlflow_servers("basic-auth")
    as_quorum(guarded).create_model(unique_name)

    # bob has MLflow's default READ: basic-auth refuses him before the guard is asked.
    response = register_version(guarded, "bob", unique_name)
    assert response.status_code == 403 and "Quorum" not in response.text
    wrong_password = requests.get(
        f"{guarded.url}/api/2.0/mlflow/registered-models/get",
        params={"name": unique_name},
        auth=("alice", "not-her-password"),
        timeout=10,
    )
    assert wrong_password.status_code == 401


def test_untagged_models_have_their_stages_protected_until_quorum_tags_them(
    guarded, as_quorum, unique_name
):
    """The window between registering a model and Quorum tagging it fails closed for stages."""
    as_quorum(guarded).create_model(unique_name)
    guarded.grant(unique_name)
    assert register_version(guarded, "alice", unique_name).status_code == 200
    assert_refused(transition(guarded, "alice", unique_name, 1, "Staging"), unique_name)
    alias = {"name": unique_name, "alias": "champion", "version": "1"}
    assert call(guarded, "alice", "POST", "registered-models/alias", alias).status_code == 200
