"""Decision latency: from the last vote's commit to the new stage being visible in MLflow.

    .venv/bin/python bench/decision_latency.py [--requests 50]

Starts a local `mlflow server` and RQ worker processes, registers one model with REQUESTS + 1
versions (and, with `--background N`, another model of N versions whose evidence the first sync
queues for the workers: background work a decision must not wait behind), then,
one request at a time: opens a request for the next version to go to Production, casts the one
approval the bench policy needs, and polls MLflow (every 5 ms) until that version is in
Production. Prints p50/p95/max, then the same decisions as the worker's audit events timed them.
Each promotion archives the previous Production version, as the default production policy does;
the job records the request done, and the sync of the model follows as a job of its own. The time
measured ends when MLflow shows the stage.

`--layout one`: one `manage.py rqworker` on all of Quorum's queues. `--layout procfile`: the
worker processes production's Procfile starts (a worker for transitions, the reconciler and
mail, and one for syncs, evidence and digests). `--layout both` runs the two one after the other
in this process, each on a fresh registry, database and Redis queues, and prints them side by side.

The database, Redis and MLflow are chosen as bench/_common.py says.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time

from _common import bench_stack, database_vendor, procfile_workers, summary_ms

POLICY = """
groups:
  bench-approvers: [approver]
policies:
  - name: bench
    models: ["*"]
    targets: [Production]
    require: [{group: bench-approvers, approvals: 1}]
    archive_existing: true
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--background", type=int, default=0, metavar="N")
    parser.add_argument("--layout", choices=("one", "procfile", "both"), default="procfile")
    args = parser.parse_args()
    if args.layout == "both":  # each layout in a process of its own: its own settings and stack
        for layout in ("one", "procfile"):
            again = [a for a in sys.argv[1:] if not a.startswith("--layout")]
            if "both" in again:
                again.remove("both")
            subprocess.run([sys.executable, __file__, *again, "--layout", layout], check=True)
        return
    stack = {"workers": 1} if args.layout == "one" else {"worker_queues": procfile_workers()}
    with bench_stack(f"decisions_{args.layout}", **stack) as url:
        latencies = run(url, args.requests, background=args.background)
        picked_up, carried_out = worker_phases()
    print(
        f"{args.layout}: decision latency over {args.requests} requests, {args.background} "
        f"versions' evidence in the background, database {database_vendor()} "
        "(last vote committed -> stage in MLflow):"
    )
    print(f"  {summary_ms(latencies)}")
    print("  as the worker recorded them (audit timestamps, no polling):")
    print(f"    approved -> transition started: {summary_ms(picked_up)}")
    print(f"    transition started -> done (moved, model re-synced): {summary_ms(carried_out)}")


def worker_phases() -> tuple[list[float], list[float]]:
    """Per request, from the audit trail: how long the job took to start after the approval,
    and how long it ran. The poll above adds up to one MLflow call's time; these do not."""
    from collections import defaultdict

    from reviews.models import AuditEvent

    stamps: dict[int, dict[str, float]] = defaultdict(dict)
    actions = ("request.approved", "transition.started", "transition.done")
    for request_id, action, at in AuditEvent.objects.filter(action__in=actions).values_list(
        "request_id", "action", "created_at"
    ):
        stamps[request_id][action] = at.timestamp()
    done = [s for s in stamps.values() if len(s) == len(actions)]
    return (
        [s["transition.started"] - s["request.approved"] for s in done],
        [s["transition.done"] - s["transition.started"] for s in done],
    )


def run(url: str, count: int, *, background: int = 0) -> list[float]:
    from django.contrib.auth.models import User

    from registry.mlflow_client import RegistryClient
    from registry.sync import sync_registry
    from reviews.decisions import opening, voting
    from reviews.models import Execution, TransitionRequest
    from reviews.policies.loading import policies_load

    # MLflow prints a line per run and logs one per version: hundreds, that bury the figures.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow.store.model_registry.abstract_store").setLevel(logging.WARNING)
    client = RegistryClient(url)
    experiment = client.experiment_id("decision-latency")
    client.create_model("latency-model")
    for number in range(count + 1):
        run_id = client.log_run(
            experiment, run_name=f"v{number + 1}", params={}, metrics={"accuracy": 0.9}
        )
        client.create_version("latency-model", source=f"runs:/{run_id}/model", run_id=run_id)
    client.transition_stage("latency-model", 1, "Production")
    if background:
        client.create_model("background-model")
        for number in range(background):
            run_id = client.log_run(
                experiment, run_name=f"b{number + 1}", params={}, metrics={"accuracy": 0.9}
            )
            client.create_version("background-model", source=f"runs:/{run_id}/model", run_id=run_id)
    # Queues the evidence and content jobs of every version for the workers.
    sync_registry(full=True, client=client)
    requester = User.objects.create_user("requester")
    approver = User.objects.create_user("approver")
    policies_load(text=POLICY)

    latencies = []
    for version in range(2, count + 2):
        request = opening.request_create(
            model="latency-model", version=version, target="Production", requester=requester
        )
        # vote_cast commits before it returns (its own transaction, no outer one).
        voting.vote_cast(request_id=request.pk, user=approver, decision="approve")
        committed = time.perf_counter()
        while True:
            found = client.get_version("latency-model", version)
            if found is not None and found.stage == "Production":
                break
            if time.perf_counter() - committed > 600:
                raise SystemExit(f"v{version} not in Production after 600 s: is a worker up?")
            time.sleep(0.005)
        latencies.append(time.perf_counter() - committed)
        # Let the job record the request done before the next request is opened.
        while TransitionRequest.objects.get(pk=request.pk).execution != Execution.DONE:
            time.sleep(0.01)
    return latencies


if __name__ == "__main__":
    main()
