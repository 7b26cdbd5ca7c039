"""Quorum's side of the guard (`reviews.execution.guard`): the probe and what shows it (settings
page, `manage.py check`, the out-of-band mail), and the protection tags kept in step with the
policies."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import RegisteredModel
from registry.sync import sync_registry
from reviews import notify
from reviews.audit import chain
from reviews.checks import check_registry_guard
from reviews.execution.guard import (
    PROTECTED_TAG,
    guard_probe_record,
    guard_tag_value,
    guard_tags_reconcile,
    protected_targets,
)
from reviews.models import ApprovalPolicy, GuardProbe, NotificationKind
from reviews.policies.loading import policies_load
from tests.conftest import CREDENTIAL_VARIABLES
from tests.mlflow_registry import register_in_mlflow
from tests.policy_files import STANDARD_POLICIES

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_credentials(monkeypatch):
    for key in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(key, raising=False)


# -- the probe ----------------------------------------------------------------------------------


def test_probe_of_a_guard_that_recognises_quorum(token_guard, as_quorum):
    probe = guard_probe_record(client=as_quorum(token_guard))
    assert (probe.guarded, probe.service_identity, probe.auth) == (True, True, "token")
    assert probe.version and not probe.error
    assert "only Quorum moves protected stages" in probe.summary
    assert check_registry_guard(None) == []


def test_probe_of_a_guard_that_does_not_recognise_quorum(token_guard, as_quorum, monkeypatch):
    as_quorum(token_guard)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "somebody-elses-token-000000000")
    probe = guard_probe_record()
    assert probe.guarded and not probe.service_identity
    assert "does not recognise Quorum's credentials" in probe.summary
    [warning] = check_registry_guard(None)
    assert warning.id == "reviews.W003" and "MLFLOW_TRACKING_TOKEN" in warning.hint


def test_probe_of_mlflow_without_the_guard(mlflow_server, no_credentials):
    probe = guard_probe_record()
    assert not probe.guarded and not probe.error
    assert "is not guarded" in probe.summary
    [warning] = check_registry_guard(None)
    assert warning.id == "reviews.W002" and "--app-name quorum-guard" in warning.hint


def test_probe_of_mlflow_that_does_not_answer(settings, no_credentials):
    from quorum.localservices import free_port

    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{free_port()}"
    probe = guard_probe_record()
    assert not probe.guarded and "Connection refused" in probe.error
    assert check_registry_guard(None) == []  # a build step without MLflow: nothing to say
    assert GuardProbe.objects.count() == 1 and GuardProbe.latest() == probe


def test_settings_page_says_whether_the_registry_is_guarded(client, requester):
    client.force_login(requester)
    url = reverse("reviews:notification_settings")
    assert "has not asked MLflow yet" in client.get(url).content.decode()

    GuardProbe.objects.create(
        pk=1, checked_at=timezone.now(), tracking_uri="http://mlflow:5000", guarded=False
    )
    page = client.get(url).content.decode()
    assert "MLflow at http://mlflow:5000 is not guarded" in page


def out_of_band_mail() -> dict[str, str]:
    details = {"change": "stage", "old": "None", "new": "Production"}
    event = chain.record(
        "registry.out_of_band", actor="mlflow", model_name="churn", version=2, details=details
    )
    return notify.render(event, NotificationKind.OUT_OF_BAND)


@pytest.mark.parametrize(
    ("guarded", "service_identity", "warned"),
    [(False, False, True), (True, False, True), (True, True, False)],
)
def test_out_of_band_mail_says_when_mlflow_could_not_refuse(guarded, service_identity, warned):
    GuardProbe.objects.create(
        pk=1,
        checked_at=timezone.now(),
        tracking_uri="http://mlflow:5000",
        guarded=guarded,
        service_identity=service_identity,
        version="0.1.0" if guarded else "",
    )
    mail = out_of_band_mail()
    for body in (mail["text"], mail["html"]):
        assert ("quorum-guard app (docs/enforcement.md)" in body) is warned


def test_out_of_band_mail_before_any_probe_says_guarding_is_unknown():
    mail = out_of_band_mail()
    assert "has not yet found out whether this MLflow server is guarded" in mail["text"]


# -- the tags ----------------------------------------------------------------------------------


def test_protected_targets_are_every_target_a_covering_policy_names(policies):
    loaded = list(ApprovalPolicy.objects.all())
    assert protected_targets("fraud", loaded) == ["@champion", "Production", "Staging"]
    policies_load(text=STANDARD_POLICIES.replace('models: ["*"]', 'models: ["fraud-*"]', 1))
    loaded = list(ApprovalPolicy.objects.all())
    assert protected_targets("churn", loaded) == ["Staging"]


def test_tags_follow_the_policies_and_a_model_that_lost_its_policy_gets_an_empty_list(
    token_guard, as_quorum, unique_name, policies
):
    client = as_quorum(token_guard)
    covered, other = f"fraud-{unique_name}", f"churn-{unique_name}"
    for name in (covered, other):
        register_in_mlflow(client, name, versions=1)
        sync_registry(model=name, client=client)  # ends by writing the tags (guarded registry)
    assert json.loads(client.get_model(other).tags[PROTECTED_TAG])["targets"] == [
        "@champion",
        "Production",
        "Staging",
    ]

    # Only fraud-* keeps Production and @champion; staging still covers everything.
    policies_load(text=STANDARD_POLICIES.replace('models: ["*"]', 'models: ["fraud-*"]', 1))
    report = guard_tags_reconcile(client=client)

    assert set(report.written) >= {other} and covered not in report.written
    assert client.get_model(other).tags[PROTECTED_TAG] == guard_tag_value(other, ["Staging"])
    assert RegisteredModel.objects.get(name=other).tags[PROTECTED_TAG] == guard_tag_value(
        other, ["Staging"]
    )
    policies_load(text="policies: []\n")
    guard_tags_reconcile(client=client)
    assert json.loads(client.get_model(other).tags[PROTECTED_TAG])["targets"] == []
    # In step: nothing more to write.
    calls = client.calls
    assert guard_tags_reconcile(client=client).written == []
    assert client.calls == calls


def test_a_model_no_policy_covers_and_never_tagged_is_left_alone(
    token_guard, as_quorum, unique_name
):
    client = as_quorum(token_guard)
    register_in_mlflow(client, unique_name, versions=1)
    sync_registry(model=unique_name, client=client)
    assert guard_tags_reconcile(client=client).written == []
    assert PROTECTED_TAG not in client.get_model(unique_name).tags


def test_quorum_writes_no_tag_on_mlflow_without_the_guard(
    mlflow_client, unique_name, policies, no_credentials
):
    register_in_mlflow(mlflow_client, unique_name, versions=1)
    sync_registry(model=unique_name, client=mlflow_client)
    assert not GuardProbe.latest().guarded
    assert PROTECTED_TAG not in mlflow_client.get_model(unique_name).tags
