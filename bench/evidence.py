"""The evidence fetch: what reading one version's packet costs, and what it adds to a sync.

    .venv/bin/python bench/evidence.py [--models 200] [--versions 10] [--sampled 20]

Builds (once, then reuses under var/bench/) an MLflow registry of MODELS x VERSIONS synthetic
versions (runs without model artifacts: each fetch finds its MLmodel missing and records why,
the most calls a fetch makes), and SAMPLED versions of real scikit-learn models with signatures,
requirements and logged datasets. Then measures, on a fresh mirror:

- per version: the worker's fetch of one real model's packet (MLmodel, requirements.txt, the
  run's inputs), median and p95, and its MLflow calls;
- full sync of the whole registry, then the one-off fetch of every version's evidence: with one
  reader thread, then again (evidence deleted) with READERS threads, as QUORUM_VERSION_READERS
  sets it for the worker: their times and their MLflow calls side by side;
- a full sync alone, then the same full sync while the threaded fetch runs beside it (the
  periodic sync must not slow down while a first fetch is under way);
- the first content digest of every version (`registry.content.digest_missing`), one version at
  a time and READERS at a time, side by side;
- a second full sync and fetch, nothing new: the fetch reads nothing (evidence is kept per
  version, which MLflow never changes);
- one new version, an incremental sync and the fetch: one version read.

Syncs never read evidence themselves; the numbers show the fetch's cost stays off the sync.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time

from _common import (
    BENCH_DIR,
    bench_stack,
    busy_between,
    database_vendor,
    machine_cpu,
    percentile,
)

SAMPLED_MODEL = "evidence-sampled"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--sampled", type=int, default=20)
    parser.add_argument("--readers", type=int, default=4, help="threads of the threaded fetch")
    parser.add_argument(
        "--mlflow-workers", type=int, default=1, help="processes of the MLflow server"
    )
    args = parser.parse_args()
    store = BENCH_DIR / f"mlflow-evidence-{args.models}x{args.versions}-{args.sampled}"
    with bench_stack("evidence", store=store, mlflow_workers=args.mlflow_workers) as url:
        if not (store / "complete").exists():
            build(url, args)
            (store / "complete").write_text("built\n")
        measure(url, args)


def build(url: str, args) -> None:
    import pandas as pd  # type: ignore[import-untyped]
    from sklearn.dummy import DummyClassifier

    from registry.mlflow_client import RegistryClient
    from registry.seeding import seed_registry

    print(f"building {args.models} x {args.versions} versions and {args.sampled} real models...")
    started = time.perf_counter()
    client = RegistryClient(url)
    seed_registry(client, models=args.models, versions=args.versions, train=False)
    client.create_model(SAMPLED_MODEL)
    experiment = client.experiment_id(SAMPLED_MODEL)
    frame = pd.DataFrame({"age": [30, 40], "income": [1.0, 2.0], "city": ["a", "b"]})
    for number in range(args.sampled):
        run_id = client.log_run(experiment, run_name=f"s{number}", params={}, metrics={})
        estimator = DummyClassifier().fit(frame[["age", "income"]], [0, 1])
        source = client.log_sklearn_model(run_id, estimator, input_example=frame)
        client.log_dataset(run_id, name="train", frame=frame, context="training")
        client.log_dataset(run_id, name="holdout", frame=frame, context="evaluation")
        client.create_version(SAMPLED_MODEL, source=source, run_id=run_id)
    print(f"built in {time.perf_counter() - started:.0f} s")


def measure(url: str, args) -> None:
    from registry.mlflow_client import RegistryClient
    from registry.models import ModelVersion, RegisteredModel, VersionContent, VersionEvidence
    from registry.sync import sync_registry

    VersionEvidence.objects.all().delete()
    VersionContent.objects.all().delete()
    ModelVersion.objects.all().delete()
    RegisteredModel.objects.all().delete()

    def timed(fn):
        """(seconds, MLflow calls, what `fn` returned, how busy the machine's cores were)."""
        client = RegistryClient(url)
        started, cpu = time.perf_counter(), machine_cpu()
        value = fn(client)
        cores_busy = busy_between(cpu, machine_cpu())
        return time.perf_counter() - started, client.calls, value, cores_busy

    sync_full = timed(lambda c: sync_registry(full=True, client=c))
    fetch_serial = timed(lambda c: drain(c, readers=1))
    VersionEvidence.objects.all().delete()
    fetch_all = timed(lambda c: drain(c, readers=args.readers))
    sync_again = timed(lambda c: sync_registry(full=True, client=c))
    fetch_again = timed(lambda c: drain(c, readers=args.readers))
    # The periodic sync with a first fetch under way beside it (in a thread, as another worker).
    VersionEvidence.objects.all().delete()
    beside = threading.Thread(target=lambda: timed(lambda c: drain(c, readers=args.readers)))
    beside.start()
    sync_beside = timed(lambda c: sync_registry(full=True, client=c))
    beside.join()
    digest_serial = timed(lambda c: digest_all(c, readers=1))
    VersionContent.objects.all().delete()
    digest_parallel = timed(lambda c: digest_all(c, readers=args.readers))

    # Per version, on the real models: each read again from MLflow, as the worker would.
    # (Each run adds a version without a model at the end: the sampled ones are the first.)
    sampled = list(
        ModelVersion.objects.filter(
            model__name=SAMPLED_MODEL, version__lte=args.sampled
        ).select_related("model")
    )
    per_version, calls_each = [], []
    for version in sampled:
        client = RegistryClient(url)
        started = time.perf_counter()
        read = client.get_evidence(version.model.name, version.version, version.run_id)
        per_version.append(time.perf_counter() - started)
        calls_each.append(client.calls)
        assert not read.problems, read.problems

    # One new version: the incremental sync, then a fetch of that one version.
    client = RegistryClient(url)
    run_id = client.log_run(
        client.experiment_id(SAMPLED_MODEL), run_name="new", params={}, metrics={}
    )
    client.create_version(SAMPLED_MODEL, source=f"runs:/{run_id}/model", run_id=run_id)
    sync_new = timed(lambda c: sync_registry(client=c))
    fetch_new = timed(lambda c: drain(c, readers=args.readers))

    total = ModelVersion.objects.count()
    print()
    synthetic, real = args.models * args.versions, args.sampled + 1
    print(
        f"registry: {synthetic} synthetic + {real} real = {total} versions; MLflow server: "
        f"{args.mlflow_workers} worker process(es)"
    )
    machine = platform.processor() or platform.machine()
    print(
        f"mirror database: {database_vendor()}; machine: {machine}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    p50, p95 = statistics.median(per_version) * 1000, percentile(per_version, 0.95) * 1000
    print(
        f"  fetch one real version's packet       p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
        f"{statistics.median(calls_each):.0f} MLflow calls"
    )
    rows = [
        ("full sync, empty mirror", sync_full),
        ("fetch every version's evidence, 1 reader", fetch_serial),
        (f"the same, {args.readers} readers", fetch_all),
        ("full sync again, nothing new", sync_again),
        ("fetch again: nothing to read", fetch_again),
        ("full sync with that fetch beside it", sync_beside),
        ("incremental sync, one new version", sync_new),
        ("fetch: the new version only", fetch_new),
        ("digest every version's files, 1 at a time", digest_serial),
        (f"the same, {args.readers} versions at a time", digest_parallel),
    ]
    for label, (seconds, calls, value, cores_busy) in rows:
        extra = f"  ({value} versions read)" if isinstance(value, int) else ""
        print(
            f"  {label:42s} {seconds:8.2f} s  {calls:6d} MLflow calls  "
            f"cores {cores_busy:4.0%} busy{extra}"
        )
    print(
        f"  {args.readers} readers against 1: {fetch_serial[0] / fetch_all[0]:.1f}x faster, "
        f"{fetch_all[1] - fetch_serial[1]:+d} MLflow calls; the sync beside the fetch took "
        f"{sync_beside[0] / sync_again[0]:.2f}x its time alone"
    )
    # Threads can only fill the cores the one reader leaves idle: the same work, spread over
    # the cores that were idle, takes at least this fraction of its time.
    print(
        f"  with 1 reader the cores were {fetch_serial[3]:.0%} busy (evidence) and "
        f"{digest_serial[3]:.0%} (digests): no number of readers can be more than "
        f"{1 / fetch_serial[3]:.1f}x and {1 / digest_serial[3]:.1f}x faster on this machine"
    )
    print(
        f"  digests, {args.readers} at a time against 1: "
        f"{digest_serial[0] / digest_parallel[0]:.1f}x faster, "
        f"{digest_parallel[1] - digest_serial[1]:+d} MLflow calls"
    )


def drain(client, *, readers: int) -> int:
    """The worker's job until nothing is left, in its batches."""
    from django.db import connection

    from registry import evidence

    read = 0
    try:
        while stored := evidence.fetch_missing(client=client, readers=readers):
            read += stored
    finally:
        connection.close()  # the thread beside the sync has a connection of its own
    return read


def digest_all(client, *, readers: int) -> int:
    """The digest job until nothing is left (one job, no time limit)."""
    from registry import content

    return content.digest_missing(client=client, readers=readers, budget_seconds=10**9)


if __name__ == "__main__":
    main()
