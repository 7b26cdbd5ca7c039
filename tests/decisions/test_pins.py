"""A request pins what it asks about, against a real `mlflow server`: the content digest and the
gated metric values at creation, the digest each vote saw; approvals go stale with the reason when
the files are rewritten in the artifact store or a gated metric is logged again, and an
auto-approve gate never fires on a value replaced after registration."""

from __future__ import annotations

import pytest
import requests

from registry import content
from registry.models import ModelVersion, VersionContent
from registry.sync import sync_registry
from reviews.decisions import deciding, opening, pins, voting
from reviews.models import AuditEvent, Decision, Notification, NotificationKind
from reviews.policies.loading import policies_load
from tests.factories import make_mirror
from tests.mlflow_registry import log_model_files, mlflow_of

pytestmark = pytest.mark.django_db

# Two approvals from data-science, and an auto-approve gate that lets none be needed.
AUTO_POLICY = """
groups:
  data-science: [scientist1, scientist2, scientist3]
policies:
  - name: staging
    models: ["*"]
    targets: [Staging]
    require: [{group: data-science, approvals: 2}]
    gates:
      - {metric: accuracy, op: ">", value: 0.97, kind: auto_approve}
"""


def register(client, name: str, *, accuracy: float | None) -> str:
    """Version 1 of `name` with two model files, its run logging f1 and `accuracy` (at step 0)
    before the version is registered (no accuracy when None); returns the run id."""
    experiment = client.experiment_id("pin-tests")
    metrics = {"f1": 0.8} if accuracy is None else {"f1": 0.8, "accuracy": accuracy}
    run_id = client.log_run(experiment, run_name=name, params={}, metrics=metrics)
    log_model_files(client, run_id, f"{name} weights")
    client.create_model(name)
    client.create_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
    return run_id


def mirror(client, name: str) -> VersionContent:
    """The whole registry synced (a run's later metrics are read by the full sync) and the
    content digested, as the workers do; returns v1's stored content."""
    sync_registry(full=True, client=client)
    content.digest_missing(client=client)
    return VersionContent.objects.get(version__model__name=name, version__version=1)


def rewrite(client, location: str, path: str, data: bytes) -> None:
    """New bytes for one model file, straight into the artifact store through MLflow's artifact
    API: no registry endpoint is called, the version's source and timestamps stay as they were."""
    root = location.removeprefix("mlflow-artifacts:").lstrip("/")
    url = f"{client.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}"
    assert requests.put(url, data=data, timeout=10).status_code == 200


def test_a_request_pins_the_digest_and_each_vote_records_the_one_it_saw(
    mlflow_client, unique_name, policies, requester, lead
):
    register(mlflow_client, unique_name, accuracy=0.9)
    stored = mirror(mlflow_client, unique_name)

    request = opening.request_create(
        model=unique_name, version=1, target="Production", requester=requester
    )
    vote = voting.vote_cast(request_id=request.pk, user=lead, decision="approve")

    assert stored.known and request.content_digest == stored.digest
    assert request.metric_pins["candidate"]["accuracy"]["value"] == 0.9
    assert vote.seen_digest == stored.digest
    created = AuditEvent.objects.get(request=request, action="request.created")
    assert created.details["content_digest"] == stored.digest


def test_a_file_rewritten_in_the_artifact_store_after_approval_makes_the_approval_stale(
    mlflow_client, unique_name, policies, requester, lead, client
):
    lead.email = "lead@example.com"
    lead.save(update_fields=["email"])
    register(mlflow_client, unique_name, accuracy=0.9)
    stored = mirror(mlflow_client, unique_name)
    request = opening.request_create(
        model=unique_name, version=1, target="Production", requester=requester
    )
    voting.vote_cast(request_id=request.pk, user=lead, decision="approve")
    old = {f["path"]: f["sha256"] for f in stored.files}["model.pkl"]

    rewrite(mlflow_client, stored.location, "model.pkl", b"cos\nsystem\n(S'echo owned'\ntR.")
    assert pins.recheck_open(client=mlflow_client) == 1

    fresh = content.read_content(ModelVersion.objects.get(pk=stored.version_id))
    new = {f.path: f.sha256 for f in fresh.manifest.files}["model.pkl"]
    (vote,) = request.votes.all()
    assert vote.stale
    assert vote.stale_reason == (
        f"model.pkl changed after you approved: sha256 {old[:12]}… → sha256 {new[:12]}…."
    )
    request.refresh_from_db()
    assert request.decision == Decision.PENDING and request.content_digest == fresh.digest
    stale = AuditEvent.objects.get(request=request, action="votes.stale")
    assert stale.details["voters"] == ["lead"]
    # The approver is asked to review again, with the reason.
    asked = Notification.objects.get(event=stale, kind=NotificationKind.REREVIEW)
    assert asked.recipient == lead
    # Nothing more changed: a second recheck finds the pinned bytes.
    assert pins.recheck_open(client=mlflow_client) == 0
    client.force_login(lead)
    page = client.get(f"/reviews/{request.pk}/").content.decode()
    assert f"sha256:{fresh.digest}" in page and "model.pkl changed after you approved" in page


def test_a_request_opened_before_the_digest_pins_it_when_known_and_asks_again(
    mlflow_client, unique_name, policies, requester, lead, scientist1, scientist2
):
    register(mlflow_client, unique_name, accuracy=0.9)
    sync_registry(full=True, client=mlflow_client)  # the digest job has not run yet
    request = opening.request_create(
        model=unique_name, version=1, target="Production", requester=requester
    )
    for voter in (lead, scientist1, scientist2):
        voting.vote_cast(request_id=request.pk, user=voter, decision="approve")
    request.refresh_from_db()
    # A quorum of approvals given to unknown bytes approves nothing.
    assert request.decision == Decision.PENDING and request.content_digest == ""
    assert "not known yet" in pins.unpinned(request)

    content.digest_missing(client=mlflow_client)

    request.refresh_from_db()
    stored = VersionContent.objects.get(version__model__name=unique_name)
    assert request.content_digest == stored.digest and request.decision == Decision.PENDING
    assert all(v.stale for v in request.votes.all())
    assert request.votes.first().stale_reason.startswith(
        f"The content digest became known after you approved: sha256 {stored.digest[:12]}…"
    )
    for voter in (lead, scientist1, scientist2):
        voting.vote_cast(request_id=request.pk, user=voter, decision="approve")
    request.refresh_from_db()
    assert request.decision == Decision.APPROVED


def test_a_late_higher_step_metric_makes_approvals_stale_and_never_auto_approves(
    mlflow_client, unique_name, cast, requester, client
):
    policies_load(text=AUTO_POLICY)
    run_id = register(mlflow_client, unique_name, accuracy=0.9)
    mirror(mlflow_client, unique_name)
    request = opening.request_create(
        model=unique_name, version=1, target="Staging", requester=requester
    )
    assert request.decision == Decision.PENDING  # 0.9 does not auto-approve
    voting.vote_cast(request_id=request.pk, user=cast["scientist1"], decision="approve")

    # Logged after the version was registered, with a higher step: MLflow now reads 0.995.
    mlflow_of(mlflow_client).log_metric(run_id, "accuracy", 0.995, step=100000)
    sync_registry(full=True, client=mlflow_client)

    request.refresh_from_db()
    (vote,) = request.votes.all()
    assert vote.stale
    assert vote.stale_reason.startswith(
        "accuracy changed from 0.9000 to 0.9950, logged at step 100000 on "
    ), vote.stale_reason
    (gate,) = request.gate_results
    assert (gate["kind"], gate["passed"]) == ("auto_approve", False)
    assert "accuracy was logged again after the version was registered" in gate["reason"]
    assert request.decision == Decision.PENDING
    pinned = request.metric_pins["candidate"]["accuracy"]
    assert pinned["replaced"] and [p[:2] for p in pinned["points"]] == [[0, 0.9], [100000, 0.995]]

    # Opened afresh on the replaced value: people sign off, and the page says why.
    deciding.request_cancel(request_id=request.pk, user=requester)
    again = opening.request_create(
        model=unique_name, version=1, target="Staging", requester=requester
    )
    assert again.decision == Decision.PENDING
    assert "logged again after the version was registered" in again.gate_results[0]["reason"]
    client.force_login(cast["scientist2"])
    page = client.get(f"/reviews/{again.pk}/").content.decode()
    assert 'id="metric-pins"' in page and "100000" in page


def test_a_metric_first_logged_after_registration_is_read_as_usual(
    mlflow_client, unique_name, cast, requester
):
    policies_load(text=AUTO_POLICY)
    run_id = register(mlflow_client, unique_name, accuracy=None)
    # An evaluation step that runs after registering logs the metric once.
    mlflow_of(mlflow_client).log_metric(run_id, "accuracy", 0.99, step=0)
    mirror(mlflow_client, unique_name)

    request = opening.request_create(
        model=unique_name, version=1, target="Staging", requester=requester
    )

    assert request.decision == Decision.APPROVED, request.gate_results
    assert request.decision_reason == "Every auto-approve gate passed: accuracy 0.9900 > 0.9700"
    pinned = request.metric_pins["candidate"]["accuracy"]
    assert pinned["history_known"] and not pinned["replaced"] and pinned["point_count"] == 1


def test_an_auto_approve_gate_whose_history_cannot_be_read_needs_people(
    policies, requester, no_mlflow
):
    make_mirror(versions={1: ("None", {"accuracy": 0.99})})  # no history cached, MLflow down

    request = opening.request_create(
        model="fraud-detector", version=1, target="Staging", requester=requester
    )

    assert request.decision == Decision.PENDING
    (gate,) = request.gate_results
    assert (gate["kind"], gate["passed"]) == ("auto_approve", False)
    assert "the history of accuracy is unknown (MLflow did not give its history" in gate["reason"]
