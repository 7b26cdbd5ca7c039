"""Sync cost against the raw MLflow listing of the same registry, measured side by side.

    .venv/bin/python bench/sync.py [--models 200] [--versions 10] [--repeat 5]

Builds (once, then reuses under var/bench/) an MLflow registry of MODELS x VERSIONS versions, each
with a run, served by a local `mlflow server`. Then, interleaved REPEAT times in one process:

- raw: `search_model_versions` (all pages) + `search_experiments` + batched `search_runs` over
  every version's run, straight through `MlflowClient`: the least any mirror must read;
- full (cold): our full sync into an empty mirror (inserts everything);
- full (warm): our full sync again, nothing changed (reads everything, writes nothing);
- incremental: our no-change incremental sync.

Prints medians and the ratios the foundation issue sets targets for: full ≤ 1.2x raw, no-change
incremental ≤ 5 % of full. The mirror goes to DATABASE_URL (default: SQLite under var/bench/).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DIR = ROOT / "var" / "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{BENCH_DIR / 'mirror.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quorum.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from quorum.localservices import free_port, start_mlflow_server

    call_command("migrate", verbosity=0)
    store = BENCH_DIR / f"mlflow-{args.models}x{args.versions}"
    built = (store / "complete").exists()
    server = start_mlflow_server(store, port=free_port())
    try:
        if not built:
            build_registry(server.url, args.models, args.versions)
            (store / "complete").write_text("built\n")
        measure(server.url, args)
    finally:
        server.stop()


def build_registry(url: str, models: int, versions: int) -> None:
    from registry.mlflow_client import RegistryClient
    from registry.seeding import seed_registry

    print(f"building a registry of {models} x {versions} versions (once; reused afterwards)...")
    started = time.perf_counter()
    seed_registry(RegistryClient(url), models=models, versions=versions, train=False)
    print(f"built in {time.perf_counter() - started:.0f} s")


def raw_listing(url: str) -> int:
    """What any mirror must read at least: every version and every version's run."""
    from mlflow.entities import ViewType
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    versions: list[ModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(max_results=10_000, page_token=token)
        versions.extend(page)
        token = page.token
        if not token:
            break
    experiment_ids: list[str] = []
    token = None
    while True:  # 1,000 experiments a page: a large registry has more
        experiments = client.search_experiments(
            view_type=ViewType.ALL, max_results=1000, page_token=token
        )
        experiment_ids.extend(e.experiment_id for e in experiments)
        token = experiments.token
        if not token:
            break
    run_ids = sorted({v.run_id for v in versions if v.run_id})
    runs = 0
    for start in range(0, len(run_ids), 500):
        chunk = ", ".join(f"'{r}'" for r in run_ids[start : start + 500])
        runs += len(
            client.search_runs(
                experiment_ids,
                filter_string=f"attributes.run_id IN ({chunk})",
                run_view_type=ViewType.ALL,
                max_results=500,
            )
        )
    # A baseline that reads less than the sync would flatter the ratio: it must find every run.
    assert runs == len(run_ids), f"the raw listing found {runs} of {len(run_ids)} runs"
    return len(versions) + runs


def empty_mirror() -> None:
    from registry.models import ModelVersion, RegisteredModel, RegistryChange, SyncRun

    RegistryChange.objects.all().delete()
    ModelVersion.objects.all().delete()
    RegisteredModel.objects.all().delete()
    SyncRun.objects.all().delete()


T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def measure(url: str, args) -> None:
    from django.db import connection

    from registry.mlflow_client import RegistryClient
    from registry.sync import sync_registry

    samples: dict[str, list[float]] = {"raw": [], "cold": [], "warm": [], "incr": []}
    calls: dict[str, int] = {}
    raw_listing(url)  # warm the server's caches and our imports before timing anything
    for _ in range(args.repeat):
        empty_mirror()
        seconds, _ = timed(lambda: raw_listing(url))
        samples["raw"].append(seconds)
        for key, full in (("cold", True), ("warm", True), ("incr", False)):
            client = RegistryClient(url)
            seconds, result = timed(functools.partial(sync_registry, client=client, full=full))
            samples[key].append(seconds)
            calls[key] = client.calls
            if key == "incr":
                assert result.changes == 0, "a no-change incremental sync found changes"
    median = {key: statistics.median(values) for key, values in samples.items()}
    versions = args.models * args.versions
    print()
    print(f"registry: {args.models} models x {args.versions} versions = {versions} versions")
    print(f"mirror database: {connection.vendor}; repeats: {args.repeat}; medians below")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"  raw MLflow listing (versions + runs)   {median['raw']:8.3f} s")
    print(
        f"  full sync, empty mirror               {median['cold']:8.3f} s  "
        f"{median['cold'] / median['raw']:5.2f}x raw  ({calls['cold']} MLflow calls)"
    )
    print(
        f"  full sync, nothing changed            {median['warm']:8.3f} s  "
        f"{median['warm'] / median['raw']:5.2f}x raw  ({calls['warm']} MLflow calls)"
    )
    print(
        f"  incremental sync, nothing changed     {median['incr']:8.3f} s  "
        f"{median['incr'] / median['warm']:6.1%} of full  ({calls['incr']} MLflow calls)"
    )


if __name__ == "__main__":
    main()
