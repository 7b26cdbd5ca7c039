"""A hostile registry: NaN and infinite metrics, versions the mirror cannot hold, a model name too
long for it. Every sync completes and mirrors the rest, saying what it skipped and why; a request
on a healthy version of the poisoned model is carried out once by a real worker process, whose
own follow-up sync reads the same poison.
"""

from __future__ import annotations

import django_rq
import pytest
from django.db import connection

from registry.content import digest_missing
from registry.jobs import SYNC_QUEUE
from registry.mlflow_client import RegistryClient
from registry.models import ModelVersion, RegisteredModel, SyncRun
from registry.sync import sync_registry
from reviews.decisions import opening, voting
from reviews.models import AuditEvent, Execution, TransitionRequest
from tests.mlflow_registry import log_model_files, mlflow_of, register_with_metrics
from tests.reliability.checks import audit_holds
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="worker processes share PostgreSQL"
    ),
]

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def poisoned(private_mlflow):
    """ "churn": v1 in Production with a NaN f1, v2 healthy, v3 with NaN and infinite metrics,
    v4 whose run cannot be read, v5-v6 that MLflow accepts and the mirror cannot hold;
    "churn-curves" whose every metric is non-finite; a model whose name is longer than the
    mirror's column. Returns the client."""
    client = RegistryClient(private_mlflow.url)
    mlflow = mlflow_of(client)
    register_with_metrics(client, "churn", {"accuracy": 0.9, "f1": NAN})
    (healthy,) = register_with_metrics(client, "churn", {"accuracy": 0.93, "f1": 0.91})
    log_model_files(client, healthy, "weights of the healthy v2\n")  # content to digest
    register_with_metrics(client, "churn", {"accuracy": NAN, "loss": [0.4, INF], "margin": -INF})
    client.transition_stage("churn", 1, "Production")
    source = "s3://models/poisoned"
    mlflow.create_model_version("churn", source, run_id="a'b\"c")  # v4: its run cannot be read
    mlflow.create_model_version("churn", source, tags={"note": "nul\x00"})  # v5
    mlflow.create_model_version("churn", source, run_id="f" * 100)  # v6
    register_with_metrics(client, "churn-curves", {"loss": [NAN, INF, -INF]})
    mlflow.create_registered_model("churn-" + "x" * 300)
    return client


def skipped_of(run: SyncRun) -> dict[tuple[str, int | None], str]:
    return {(item["model"][:40], item["version"]): item["reason"] for item in run.skipped}


def test_poison_is_skipped_and_a_healthy_version_is_promoted_once_by_a_worker(
    poisoned, workers, policies
):
    result = sync_registry(full=True, client=poisoned)
    digest_missing(client=poisoned)  # the digest job that follows a sync

    churn = {v.version: v for v in ModelVersion.objects.filter(model__name="churn")}
    # v4's run cannot be read: it is mirrored (its stage matters) without metrics, said partial.
    assert sorted(churn) == [1, 2, 3, 4] and churn[4].metrics == {}
    assert churn[1].metrics["f1"] == "NaN" and churn[1].stage == "Production"
    assert churn[3].metrics == {"accuracy": "NaN", "loss": "Infinity", "margin": "-Infinity"}
    curves = ModelVersion.objects.get(model__name="churn-curves")
    assert curves.metrics == {"loss": "-Infinity"}
    skipped = skipped_of(SyncRun.objects.get())
    assert {key for key in skipped if key[0] == "churn"} == {
        ("churn", 4),
        ("churn", 5),
        ("churn", 6),
    }
    assert "mirrored without its run's metrics" in skipped[("churn", 4)]
    assert [item["version"] for item in SyncRun.objects.get().skipped if item.get("partial")] == [4]
    assert ("churn-" + "x" * 34, None) in skipped
    assert not RegisteredModel.objects.filter(name__startswith="churn-x").exists()
    assert len(result.skipped) == 4

    # A request on the healthy v2, against a Production holder whose f1 is NaN.
    request = opening.request_create(
        model="churn", version=2, target="Production", requester=policies["requester"]
    )
    f1 = next(g for g in request.gate_results if g["metric"] == "f1")
    assert f1["passed"] and f1["reason"] == "not evaluated: the current holder's f1 is NaN"
    for voter in ("lead", "scientist1", "scientist2"):
        voting.vote_cast(request_id=request.pk, user=policies[voter], decision="approve")
    workers.start(mlflow_url=poisoned.tracking_uri)

    wait_for(
        lambda: TransitionRequest.objects.get(pk=request.pk).execution == Execution.DONE,
        timeout=90,
        message="the transition to be done",
    )

    assert poisoned.get_version("churn", 2).stage == "Production"
    assert poisoned.get_version("churn", 1).stage == "Archived"  # archive_existing
    actions = list(
        AuditEvent.objects.filter(request=request, action__startswith="transition.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == ["transition.started", "transition.done"]
    assert TransitionRequest.objects.get(pk=request.pk).execution_attempts == 1

    # Whoever synced since (the worker's follow-up sync, these) finished and skipped the poison;
    # an incremental sync reads only what moved, which the poison did not.
    sync_registry(client=poisoned)
    for model in ("churn", None):
        again = sync_registry(full=model is None, model=model, client=poisoned)
        assert {(item["model"], item["version"]) for item in again.skipped} >= {
            ("churn", 4),
            ("churn", 5),
            ("churn", 6),
        }
    # The worker's follow-up sync may still be queued or running on a loaded machine: let it
    # start and finish (no run unfinished while none is queued would miss one about to start).
    sync_queue = django_rq.get_queue(SYNC_QUEUE)
    wait_for(
        lambda: (
            sync_queue.count == 0
            and sync_queue.started_job_registry.count == 0
            and not SyncRun.objects.filter(finished_at=None).exists()
        ),
        timeout=60,
        message="every queued sync to run and finish",
    )
    runs = list(SyncRun.objects.all())
    assert len(runs) >= 4
    assert all(run.finished_at is not None and run.error == "" for run in runs), [
        (run.kind, run.finished_at, run.error)
        for run in runs
        if run.error or run.finished_at is None
    ]
    mirrored = dict(
        ModelVersion.objects.filter(model__name="churn").values_list("version", "stage")
    )
    assert mirrored == {1: "Archived", 2: "Production", 3: "None", 4: "None"}
    audit_holds()
