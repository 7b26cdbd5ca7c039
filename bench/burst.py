"""Burst: many requests reach quorum within seconds; two workers drain the transitions. Compared
with MLflow's own rate for the same moves, made directly by as many processes.

    .venv/bin/python bench/burst.py [--requests 500] [--workers 2] [--voters 8]

Registers two identical sets of REQUESTS versions in MLflow (REQUESTS / 10 models of 10 versions
each). The raw set is moved straight through MLflow's client by WORKERS processes, one call per
version, each process taking its share: the least any worker pool must spend on the same moves,
and the floor it can approach. It is moved twice, to Staging before the burst and on to Production
after it, and the mean of the two is the raw rate: the machine's load drifts during a run. For the
burst set Quorum opens a request per version to go to Staging, then casts every final approval
from VOTERS threads at once while WORKERS `rqworker` processes (all of Quorum's queues, as
production runs them) carry them out.

Prints the raw moves' time and rate, how long the votes took, the drain (first vote to the last
request done) as a rate and as a ratio of the raw rate, and when the mirror had observed every
move (the follow-up syncs run after the transitions). Then checks that every burst version is in
Staging in MLflow and was moved exactly once: one attempt per request and one observed
None -> Staging change per version.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

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


def register(url: str, names: list[str], per_model: int, *, files: bool) -> None:
    """`per_model` versions of each model; with `files`, each has model files to digest."""
    from registry.mlflow_client import RegistryClient

    experiment = RegistryClient(url).experiment_id("burst")

    def one_model(name: str) -> None:
        client = RegistryClient(url)
        client.create_model(name)
        for number in range(1, per_model + 1):
            run_id = client.log_run(experiment, run_name=name, params={}, metrics={"accuracy": 0.9})
            if files:  # nothing is approved without a content digest, nor moved
                client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
                client.log_text(run_id, f"weights of {name} v{number}\n", "model/model.txt")
            client.create_version(name, source=f"runs:/{run_id}/model", run_id=run_id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one_model, names))


def move_directly(url: str, versions: list[tuple[str, int]], stage: str) -> tuple[float, float]:
    """One raw mover: each version to `stage` with MLflow's own client, one call each."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated, still served
    started = time.time()
    for name, number in versions:
        client.transition_model_version_stage(name, str(number), stage)
    return started, time.time()


def raw_moves(url: str, versions: list[tuple[str, int]], processes: int, stage: str) -> float:
    """Seconds the `processes` raw movers took for all `versions`, first start to last end."""
    shares = [versions[i::processes] for i in range(processes)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        spans = list(pool.map(move_directly, [url] * processes, shares, [stage] * processes))
    return max(end for _, end in spans) - min(start for start, _ in spans)


def background_settled() -> bool:
    """No job queued or running on any of Quorum's queues: the versions' digests and evidence,
    read after the sync, are in."""
    import django_rq
    from django.conf import settings
    from rq.registry import StartedJobRegistry

    queues = [django_rq.get_queue(name) for name in settings.QUORUM_QUEUES]
    return not any(q.count or StartedJobRegistry(queue=q).count for q in queues)


def run(url: str, args) -> None:
    from django.contrib.auth.models import User
    from django.db import connection

    from registry.mlflow_client import RegistryClient
    from registry.models import ChangeKind, RegistryChange
    from registry.sync import sync_registry
    from reviews.decisions import opening, voting
    from reviews.models import Decision, Execution, TransitionRequest
    from reviews.policies.loading import policies_load

    # MLflow prints a line per run and logs one per version: thousands, that bury the figures.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow.store.model_registry.abstract_store").setLevel(logging.WARNING)
    models = max(1, args.requests // 10)
    names = [f"burst-{i:03d}" for i in range(models)]
    raw_names = [f"raw-{i:03d}" for i in range(models)]
    started = time.perf_counter()
    register(url, names, 10, files=True)
    register(url, raw_names, 10, files=False)
    print(f"registered {2 * models * 10} versions in {time.perf_counter() - started:.0f} s")

    raw_versions = [(n, v) for n in raw_names for v in range(1, 11)][: args.requests]
    raw_before = raw_moves(url, raw_versions, args.workers, "Staging")
    print(f"raw: {args.workers} processes moved {len(raw_versions)} versions in {raw_before:.1f} s")

    sync_registry(full=True, client=RegistryClient(url))
    requester = User.objects.create_user("requester")
    approver = User.objects.create_user("approver")
    policies_load(text=POLICY)
    wanted = [(name, number) for name in names for number in range(1, 11)][: args.requests]
    requests = [
        opening.request_create(model=name, version=number, target="Staging", requester=requester)
        for name, number in wanted
    ]
    ids = [r.pk for r in requests]
    # The votes come once every request has its digest pinned and its evidence read, as when
    # people approve: a vote cast before either is asked again, and the burst would be of none.
    settling = time.perf_counter()
    while not background_settled():
        if time.perf_counter() - settling > 600:
            sys.exit("the digest and evidence jobs still running after 10 minutes")
        time.sleep(0.5)
    unpinned = TransitionRequest.objects.filter(pk__in=ids, content_digest="").count()
    if unpinned:
        sys.exit(f"{unpinned} requests have no content digest: nothing would be approved")
    print(
        f"opened {len(ids)} requests, digests and evidence in after "
        f"{time.perf_counter() - settling:.0f} s; casting the final approvals from "
        f"{args.voters} threads"
    )

    def vote(request_id: int) -> None:
        try:
            voting.vote_cast(request_id=request_id, user=approver, decision="approve")
        finally:
            connection.close()

    first_vote = time.perf_counter()
    with ThreadPoolExecutor(args.voters) as pool:
        list(pool.map(vote, ids))
    voted = time.perf_counter() - first_vote
    # Polled with one cheap query a tenth of a second: the poll must not load the machine it
    # measures (the requests' ids are contiguous, this run's only ones).
    outcomes = TransitionRequest.objects.filter(pk__range=(min(ids), max(ids)))
    if undecided := outcomes.exclude(decision=Decision.APPROVED).count():
        sys.exit(f"{undecided} requests were not approved by their final vote")
    done_while_voting = outcomes.filter(execution=Execution.DONE).count()
    while outcomes.filter(execution__in=[Execution.QUEUED, Execution.RUNNING]).exists():
        if time.perf_counter() - first_vote > 600:
            sys.exit("requests still not done after 10 minutes")
        time.sleep(0.1)
    drained = time.perf_counter() - first_vote

    moves = RegistryChange.objects.filter(
        kind=ChangeKind.STAGE_CHANGED, new="Staging", model__name__in=names
    )
    while moves.count() < len(ids):
        if time.perf_counter() - first_vote > 600:
            sys.exit(f"{moves.count()} of {len(ids)} moves mirrored after 10 minutes")
        time.sleep(0.1)
    mirrored = time.perf_counter() - first_vote

    failed = outcomes.exclude(execution=Execution.DONE).count()
    multiple_attempts = outcomes.exclude(execution_attempts=1).count()
    per_version = moves.values_list("version_id", flat=True)
    duplicated = len(per_version) - len(set(per_version))
    in_staging = sum(
        1 for v in RegistryClient(url).list_versions() if v.name in names and v.stage == "Staging"
    )
    # The raw moves again, after the burst (the raw set on to Production: the same call): the
    # machine's load drifts, and the mean of the two brackets the burst.
    raw_after = raw_moves(url, raw_versions, args.workers, "Production")
    raw = (raw_before + raw_after) / 2
    raw_rate = len(raw_versions) / raw
    rate = len(ids) / drained
    print()
    print(f"burst of {len(ids)} requests, {args.workers} workers, database {database_vendor()}:")
    print(
        f"  raw MLflow, {args.workers} processes moving directly "
        f"{raw:6.1f} s ({raw_rate:.1f} moves/s; {raw_before:.1f} s before, "
        f"{raw_after:.1f} s after)"
    )
    print(
        f"  votes cast (quorum reached for all)         {voted:6.1f} s "
        f"({done_while_voting} transitions done meanwhile)"
    )
    print(
        f"  drain: first vote -> last done             {drained:6.1f} s "
        f"({rate:.1f} transitions/s, {rate / raw_rate:.2f}x raw)"
    )
    print(f"  mirror: first vote -> every move observed  {mirrored:6.1f} s")
    print(
        f"  not done: {failed}; more than one attempt: {multiple_attempts}; "
        f"versions moved twice: {duplicated}; in Staging in MLflow: {in_staging}/{len(ids)}"
    )
    if failed or multiple_attempts or duplicated or in_staging != len(ids):
        sys.exit("burst check failed")


if __name__ == "__main__":
    main()
