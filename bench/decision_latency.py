"""Decision latency: from the last vote's commit to the new stage being visible in MLflow.

    .venv/bin/python bench/decision_latency.py [--requests 50]

Starts a local `mlflow server` and one RQ worker process (`manage.py rqworker transitions`, the
same command production runs), registers one model with REQUESTS + 1 versions, then, one request
at a time: opens a request for the next version to go to Production, casts the one approval the
bench policy needs, and polls MLflow (every 5 ms) until that version is in Production. Prints
p50/p95/max. Each promotion archives the previous Production version, as the default production
policy does, and the job re-syncs the model afterwards: the worker does all of that before the
request is done, but the time measured ends when MLflow shows the stage.

Uses DATABASE_URL when set (it must be a database the worker process can see: not in-memory
SQLite), else a fresh SQLite file under var/bench/; REDIS_URL when set, else database 13 of the
Redis on 127.0.0.1:6379, else a private redis-server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DIR = ROOT / "var" / "bench"

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
    args = parser.parse_args()

    from quorum.localservices import (
        free_port,
        redis_answers,
        start_embedded_redis,
        start_mlflow_server,
        stop_process,
    )

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    database = BENCH_DIR / "decision.sqlite3"
    database.unlink(missing_ok=True)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{database}")
    embedded = None
    if "REDIS_URL" not in os.environ:
        local = "redis://127.0.0.1:6379/13"
        if redis_answers(local):
            os.environ["REDIS_URL"] = local
        else:
            embedded = start_embedded_redis(BENCH_DIR)
            os.environ["REDIS_URL"] = embedded.url
    store = BENCH_DIR / f"mlflow-decisions-{int(time.time())}"
    server = start_mlflow_server(store, port=free_port())
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quorum.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    worker = None
    try:
        import django_rq

        django_rq.get_queue("transitions").empty()
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "transitions", "--with-scheduler"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        latencies = run(server.url, args.requests)
    finally:
        if worker is not None:
            stop_process(worker)
        server.stop()
        if embedded is not None:
            embedded.stop()
    report(latencies, args.requests)


def run(url: str, count: int) -> list[float]:
    from django.contrib.auth.models import User

    from registry.mlflow_client import RegistryClient
    from registry.sync import sync_registry
    from reviews import services
    from reviews.models import Execution, TransitionRequest
    from reviews.policies import policies_load

    client = RegistryClient(url)
    experiment = client.experiment_id("decision-latency")
    client.create_model("latency-model")
    for number in range(count + 1):
        run_id = client.log_run(
            experiment, run_name=f"v{number + 1}", params={}, metrics={"accuracy": 0.9}
        )
        client.create_version("latency-model", source=f"runs:/{run_id}/model", run_id=run_id)
    client.transition_stage("latency-model", 1, "Production")
    sync_registry(full=True, client=client)
    requester = User.objects.create_user("requester")
    approver = User.objects.create_user("approver")
    policies_load(text=POLICY)

    latencies = []
    for version in range(2, count + 2):
        request = services.request_create(
            model="latency-model", version=version, target="Production", requester=requester
        )
        # vote_cast commits before it returns (its own transaction, no outer one).
        services.vote_cast(request_id=request.pk, user=approver, decision="approve")
        committed = time.perf_counter()
        while client.get_version("latency-model", version).stage != "Production":
            if time.perf_counter() - committed > 30:
                raise SystemExit(f"v{version} not in Production after 30 s: is the worker up?")
            time.sleep(0.005)
        latencies.append(time.perf_counter() - committed)
        # Let the job finish its re-sync before the next request reads the mirror.
        while TransitionRequest.objects.get(pk=request.pk).execution != Execution.DONE:
            time.sleep(0.01)
    return latencies


def report(latencies: list[float], count: int) -> None:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    print(f"decision latency over {count} requests (last vote committed -> stage in MLflow):")
    print(f"  p50 {statistics.median(ordered) * 1000:7.0f} ms")
    print(f"  p95 {p95 * 1000:7.0f} ms")
    print(f"  max {ordered[-1] * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
