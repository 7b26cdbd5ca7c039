"""The content digest: reading a version's model files from MLflow and hashing them, against a
raw download of the same files, in the same run.

    .venv/bin/python bench/content_digest.py [--weights-mb 96] [--shards 4] [--small 100]
                                             [--rounds 5]

Builds (once, then reuses under var/bench/) a registered scikit-learn model whose LoggedModel also
holds SHARDS weight files of WEIGHTS_MB / SHARDS MB each and SMALL files of 32 kB (a tokenizer's
or a pipeline's many small parts), random bytes PUT through MLflow's artifact API, beside its
MLmodel, requirements and environment files. Large files measure throughput; small ones the cost
per file, which the pool of threads overlaps. Then measures, ROUNDS times
each, interleaved so a slow moment hits every method alike:

- MLflow's own download of the model directory to disk (`mlflow.artifacts.download_artifacts`):
  what a deploy step fetching the model does, the baseline;
- the same files streamed through Quorum's client and thrown away, QUORUM_CONTENT_READERS
  threads: the transport alone;
- the digest as the worker computes it (`registry.content.read_content`), with 1 thread and with
  QUORUM_CONTENT_READERS threads;
- the digest of the downloaded copy on local disk (`quorum_cli.manifest.hash_directory`, what
  `quorum verify --path` will cost).

Prints medians, throughput and the ratio to the download; the digest must equal the local one.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
from _common import BENCH_DIR, bench_stack

MODEL = "content-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights-mb", type=int, default=96)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    store = BENCH_DIR / f"mlflow-content-{args.weights_mb}mb-{args.shards}-{args.small}"
    with bench_stack("content", store=store) as url:
        if not (store / "complete").exists():
            build(url, args)
            (store / "complete").write_text("built\n")
        measure(url, args)


def build(url: str, args) -> None:
    import pandas as pd  # type: ignore[import-untyped]
    from sklearn.dummy import DummyClassifier

    from registry.mlflow_client import RegistryClient

    client = RegistryClient(url)
    frame = pd.DataFrame({"age": [30, 40], "income": [1.0, 2.0]})
    run_id = client.log_run(client.experiment_id(MODEL), run_name="bench", params={}, metrics={})
    source = client.log_sklearn_model(run_id, DummyClassifier().fit(frame, [0, 1]))
    client.create_model(MODEL)
    version = client.create_version(MODEL, source=source, run_id=run_id)
    location = client.model_location(MODEL, version)
    root = location.removeprefix("mlflow-artifacts:").lstrip("/")
    shard = args.weights_mb * 1024 * 1024 // args.shards
    files = {f"weights/shard-{n:02d}.bin": shard for n in range(args.shards)}
    files |= {f"parts/part-{n:04d}.bin": 32 * 1024 for n in range(args.small)}
    for path, size in files.items():
        response = requests.put(
            f"{url}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}",
            data=os.urandom(size),
            timeout=120,
        )
        response.raise_for_status()


def measure(url: str, args) -> None:
    from django.conf import settings
    from mlflow.artifacts import download_artifacts

    from quorum_cli import manifest
    from registry import content
    from registry.mlflow_client import RegistryClient
    from registry.models import ModelVersion
    from registry.sync import sync_registry

    sync_registry(model=MODEL, client=RegistryClient(url))
    version = ModelVersion.objects.select_related("model").get(model__name=MODEL, version=1)
    client = RegistryClient(url)
    listing = client.model_files(MODEL, 1, max_files=10_000)
    total = sum(f.size or 0 for f in listing.files)
    readers = settings.QUORUM_CONTENT_READERS
    scratch = Path(tempfile.mkdtemp(prefix="content-bench-", dir=BENCH_DIR))

    def download() -> None:
        target = scratch / "download"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        download_artifacts(artifact_uri=listing.location, dst_path=str(target), tracking_uri=url)

    def stream_only() -> None:
        def drain(path: str) -> manifest.FileEntry:
            for _ in RegistryClient(url).read_model_file(
                listing.location, path, chunk_size=settings.QUORUM_CONTENT_CHUNK_BYTES
            ):
                pass
            return manifest.FileEntry(path=path, sha256="00" * 32, size=0)

        manifest.hash_all([f.path for f in listing.files], drain, workers=readers)

    digests: set[str] = set()

    def digest(threads: int) -> Callable[[], None]:
        def run() -> None:
            read = content.read_content(version, client=RegistryClient(url), readers=threads)
            assert read.manifest is not None, read.reason
            digests.add(read.digest)

        return run

    local_copy = scratch / "copy"

    def local() -> None:
        digests.add(manifest.hash_directory(local_copy).digest)

    download_artifacts(artifact_uri=listing.location, dst_path=str(local_copy), tracking_uri=url)
    local_copy = local_copy / Path(listing.location).name
    methods: list[tuple[str, Callable[[], None]]] = [
        ("MLflow download to disk (baseline)", download),
        (f"stream only, {readers} threads, no hashing", stream_only),
        ("digest from MLflow, 1 thread", digest(1)),
        (f"digest from MLflow, {readers} threads", digest(readers)),
        ("digest of the local copy (verify --path)", local),
    ]
    times: dict[str, list[float]] = {label: [] for label, _ in methods}
    for _ in range(args.rounds):
        for label, fn in methods:
            started = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - started)
    shutil.rmtree(scratch, ignore_errors=True)
    assert len(digests) == 1, digests  # every way of reading gives the one digest

    machine = platform.processor() or platform.machine()
    print()
    print(
        f"model: {len(listing.files)} files, {total / 1e6:.1f} MB; {args.rounds} rounds; "
        f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"digest: sha256:{digests.pop()}")
    baseline = statistics.median(times[methods[0][0]])
    for label, _ in methods:
        median = statistics.median(times[label])
        print(
            f"  {label:44s} {median * 1000:7.0f} ms  {total / median / 1e6:7.1f} MB/s  "
            f"×{median / baseline:.2f} of the download"
        )


if __name__ == "__main__":
    main()
