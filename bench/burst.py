"""Burst: many requests reach quorum within seconds; two workers drain the transitions.

    .venv/bin/python bench/burst.py [--requests 500] [--workers 2] [--voters 8]

Registers REQUESTS versions in MLflow (REQUESTS / 10 models of 10 versions), opens a request for
each to go to Staging, then casts every final approval from VOTERS threads at once while WORKERS
`rqworker` processes run. Prints how long the votes took, the drain time (first vote to the last
request done), and checks that every version is in Staging in MLflow and was moved exactly once:
one attempt per request and one observed None -> Staging change per version.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from _common import bench_stack, database_vendor

POLICY = """
groups:
  bench-approvers: [approver]
policies:
  - name: bench-staging
    models: ["*"]
    targets: [Staging]
    require: [{group: bench-approvers, approvals: 1}]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--voters", type=int, default=8)
    args = parser.parse_args()
    with bench_stack("burst", workers=args.workers) as url:
        run(url, args)


def run(url: str, args) -> None:
    from django.contrib.auth.models import User
    from django.db import connection

    from registry.mlflow_client import RegistryClient
    from registry.models import ChangeKind, RegistryChange
    from registry.sync import sync_registry
    from reviews import services
    from reviews.models import Execution, TransitionRequest
    from reviews.policies import policies_load

    client = RegistryClient(url)
    models = max(1, args.requests // 10)
    started = time.perf_counter()
    names = [f"burst-{i:03d}" for i in range(models)]

    experiment = client.experiment_id("burst")

    def register(name: str) -> None:
        worker_client = RegistryClient(url)
        worker_client.create_model(name)
        for _ in range(10):
            run_id = worker_client.log_run(
                experiment, run_name=name, params={}, metrics={"accuracy": 0.9}
            )
            worker_client.create_version(name, source=f"runs:/{run_id}/model", run_id=run_id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(register, names))
    sync_registry(full=True, client=client)
    print(f"registered {models * 10} versions in {time.perf_counter() - started:.0f} s")

    requester = User.objects.create_user("requester")
    approver = User.objects.create_user("approver")
    policies_load(text=POLICY)
    wanted = [(name, number) for name in names for number in range(1, 11)][: args.requests]
    requests = [
        services.request_create(model=name, version=number, target="Staging", requester=requester)
        for name, number in wanted
    ]
    ids = [r.pk for r in requests]
    print(f"opened {len(ids)} requests; casting the final approvals from {args.voters} threads")

    def vote(request_id: int) -> None:
        try:
            services.vote_cast(request_id=request_id, user=approver, decision="approve")
        finally:
            connection.close()

    first_vote = time.perf_counter()
    with ThreadPoolExecutor(args.voters) as pool:
        list(pool.map(vote, ids))
    voted = time.perf_counter() - first_vote
    pending = set(ids)
    while pending:
        done = TransitionRequest.objects.filter(pk__in=pending).exclude(
            execution__in=[Execution.QUEUED, Execution.RUNNING]
        )
        pending -= set(done.values_list("pk", flat=True))
        if time.perf_counter() - first_vote > 600:
            sys.exit(f"{len(pending)} requests still not done after 10 minutes")
        time.sleep(0.2)
    drained = time.perf_counter() - first_vote

    outcomes = TransitionRequest.objects.filter(pk__in=ids)
    failed = outcomes.exclude(execution=Execution.DONE).count()
    multiple_attempts = outcomes.exclude(execution_attempts=1).count()
    moves = RegistryChange.objects.filter(
        kind=ChangeKind.STAGE_CHANGED, new="Staging", model__name__in=names
    )
    per_version = moves.values_list("version_id", flat=True)
    duplicated = len(per_version) - len(set(per_version))
    in_staging = sum(
        1 for v in RegistryClient(url).list_versions() if v.name in names and v.stage == "Staging"
    )
    print()
    print(f"burst of {len(ids)} requests, {args.workers} workers, database {database_vendor()}:")
    print(f"  votes cast (quorum reached for all)   {voted:6.1f} s")
    print(
        f"  drain: first vote -> last done          {drained:6.1f} s "
        f"({len(ids) / drained:.1f} transitions/s)"
    )
    print(
        f"  not done: {failed}; more than one attempt: {multiple_attempts}; "
        f"versions moved twice: {duplicated}; in Staging in MLflow: {in_staging}/{len(ids)}"
    )
    if failed or multiple_attempts or duplicated or in_staging != len(ids):
        sys.exit("burst check failed")


if __name__ == "__main__":
    main()
