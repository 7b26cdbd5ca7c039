"""The content digest of a version against a real `mlflow server`: it agrees with OpenSSF
model_signing on the same files, notices a model file rewritten behind MLflow's back, says why
when the files cannot be read, is read once by the job, and streams large files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tracemalloc

import pytest
import requests

from quorum_cli import manifest
from registry import content
from registry.jobs import enqueue_content_digest
from registry.mlflow_client import ArtifactFile, MlflowError, ModelFiles, RegistryClient
from registry.models import ContentState, ModelVersion, VersionContent
from registry.sync import sync_registry
from tests.mlflow_registry import artifact_url, download, mlflow_of, register_sklearn_version

pytestmark = pytest.mark.django_db

COLUMNS = {"age": "int64", "income": "int64"}


def mirrored(client, name: str) -> dict[int, VersionContent]:
    """Syncs `name`, digests its versions as the worker does, keyed by version number."""
    sync_registry(model=name, client=client)
    content.digest_missing(client=client)
    return {
        c.version.version: c
        for c in VersionContent.objects.filter(version__model__name=name).select_related("version")
    }


def version_of(name: str, number: int = 1) -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(model__name=name, version=number)


def signed_statement(model_dir, key_dir) -> dict:
    """Signs `model_dir` with model_signing (an elliptic key, every file included) and returns
    the in-toto statement its signature carries."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from model_signing import hashing, signing

    key = ec.generate_private_key(ec.SECP256R1())
    private = key_dir / "key.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signature = key_dir / "model.sig"
    every_file = hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False)
    signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        every_file
    ).sign(model_dir, signature)
    bundle = json.loads(signature.read_text())
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def test_digest_of_a_logged_model_agrees_with_model_signing_on_the_same_files(
    mlflow_client, unique_name, tmp_path
):
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)

    stored = mirrored(mlflow_client, unique_name)[1]

    assert stored.state == ContentState.KNOWN and stored.reason == ""
    paths = [f["path"] for f in stored.files]
    assert {"MLmodel", "model.pkl", "requirements.txt", "python_env.yaml"} <= set(paths)
    assert stored.file_count == len(paths) and stored.total_size == sum(
        f["size"] for f in stored.files
    )
    assert stored.location.startswith("mlflow-artifacts:/") and "/models/m-" in stored.location
    keys = tmp_path / "keys"
    keys.mkdir()
    model_dir = download(mlflow_client, stored.location, tmp_path / "download")

    statement = signed_statement(model_dir, keys)

    resources = statement["predicate"]["resources"]
    assert [r["name"] for r in resources] == paths
    assert [r["digest"] for r in resources] == [f["sha256"] for f in stored.files]
    assert statement["subject"][0]["digest"]["sha256"] == stored.model_signing_digest
    assert hashlib.sha256(manifest.canonical_json(resources)).hexdigest() == stored.digest
    # The local copy gives the same digest: what `quorum verify --path` will compute.
    assert manifest.hash_directory(model_dir).digest == stored.digest


def test_a_version_registered_from_its_logged_model_has_the_same_content(
    mlflow_client, unique_name
):
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    mlflow_ = mlflow_of(mlflow_client)
    run_id = mlflow_client.get_version(unique_name, 1).run_id
    (logged,) = mlflow_.search_logged_models(
        experiment_ids=[mlflow_client.experiment_id("evidence-tests")],
        filter_string=f"source_run_id = '{run_id}'",
    )
    # `models:/m-…`, as `mlflow.register_model(model_info.model_uri)` registers it.
    mlflow_.create_model_version(
        unique_name, f"models:/{logged.model_id}", run_id=run_id, model_id=logged.model_id
    )

    read = mirrored(mlflow_client, unique_name)

    assert read[2].state == ContentState.KNOWN
    assert read[2].digest == read[1].digest and read[2].location == read[1].location


def test_a_rewritten_model_file_changes_the_digest_and_the_comparison_names_it(
    mlflow_client, unique_name
):
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    stored = mirrored(mlflow_client, unique_name)[1]

    # Straight to the artifact store, as an attacker with the server's address would: no
    # registry endpoint is called, the version's source and timestamps stay as they were.
    response = requests.put(
        artifact_url(mlflow_client, stored.location, "model.pkl"),
        data=b"cos\nsystem\n(S'echo owned'\ntR.",
        timeout=10,
    )
    assert response.status_code == 200
    fresh = content.read_content(version_of(unique_name), client=mlflow_client)

    assert fresh.manifest is not None and fresh.digest != stored.digest
    differences = manifest.compare(manifest.Manifest.from_json(stored.files), fresh.manifest)
    assert [(d.path, d.kind) for d in differences] == [("model.pkl", "changed")]
    # What Quorum saw stays as it was: the stored digest is the one approvals will bind.
    sync_registry(model=unique_name, client=mlflow_client)
    assert content.digest_missing(client=mlflow_client) == 0
    assert VersionContent.objects.get(pk=stored.pk).digest == stored.digest


def test_a_source_holding_no_files_gives_unknown_with_the_reason(mlflow_client, unique_name):
    run_id = mlflow_client.log_run(
        mlflow_client.experiment_id("content-tests"), run_name="empty", params={}, metrics={}
    )
    mlflow_client.create_model(unique_name)
    mlflow_client.create_version(unique_name, source=f"runs:/{run_id}/nothing", run_id=run_id)

    stored = mirrored(mlflow_client, unique_name)[1]

    assert stored.state == ContentState.UNKNOWN and not stored.known
    assert stored.reason.startswith("MLflow lists no files at mlflow-artifacts:/"), stored.reason
    assert stored.digest == "" and stored.files == [] and stored.file_count == 0
    # Kept with its reason, not read again and again; the nightly sync retries it.
    assert not content.waiting().exists()
    assert list(content.waiting(retry_unknown=True)) == [stored.version]


def test_a_listed_file_that_cannot_be_read_gives_unknown_naming_it(
    mlflow_client, unique_name, monkeypatch
):
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    sync_registry(model=unique_name, client=mlflow_client)
    list_files = RegistryClient.model_files

    def with_a_ghost(self, name, version, *, max_files):
        # A file deleted from the store between the listing and its read.
        listing = list_files(self, name, version, max_files=max_files)
        return ModelFiles(listing.location, (*listing.files, ArtifactFile("ghost.bin", 10)))

    monkeypatch.setattr(RegistryClient, "model_files", with_a_ghost)

    content.digest_missing(client=mlflow_client)

    stored = VersionContent.objects.get(version__model__name=unique_name)
    assert stored.state == ContentState.UNKNOWN
    assert stored.reason.startswith(
        "its files could not be read: MLflow answered 404 for ghost.bin: No such artifact: "
    ), stored.reason


def test_more_files_or_bytes_than_the_limits_give_unknown(mlflow_client, unique_name, settings):
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    sync_registry(model=unique_name, client=mlflow_client)
    version = version_of(unique_name)

    settings.QUORUM_CONTENT_MAX_FILES = 3
    too_many = content.read_content(version, client=mlflow_client)
    settings.QUORUM_CONTENT_MAX_FILES = 10_000
    settings.QUORUM_CONTENT_MAX_BYTES = 1000
    too_large = content.read_content(version, client=mlflow_client)

    assert too_many.manifest is None and too_large.manifest is None
    assert too_many.reason.startswith("its files could not be listed: more than 3 files under ")
    assert too_large.reason.startswith("its files add up to ")
    assert too_large.reason.endswith(
        "bytes, more than QUORUM_CONTENT_MAX_BYTES (1,000) allows reading"
    )


def test_mlflow_unreachable_leaves_the_version_waiting_instead_of_unknown(
    mlflow_client, unique_name, monkeypatch
):
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    sync_registry(model=unique_name, client=mlflow_client)
    from quorum.localservices import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = RegistryClient(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(MlflowError) as raised:
        content.digest_missing(client=down)

    assert raised.value.unreachable
    assert not VersionContent.objects.exists()
    assert content.waiting().count() == 1


def test_versions_digested_several_at_once_give_the_same_digests_with_the_same_calls(
    mlflow_client, unique_name
):
    """QUORUM_VERSION_READERS versions read at a time divide a first digest of a registry, not
    what MLflow is asked."""
    for number in range(4):
        register_sklearn_version(
            mlflow_client, unique_name, columns={**COLUMNS, f"extra{number}": "float64"}
        )
    sync_registry(model=unique_name, client=mlflow_client)

    def digest_all(readers: int) -> tuple[int, dict[int, str]]:
        VersionContent.objects.all().delete()
        client = RegistryClient(mlflow_client.tracking_uri)
        assert content.digest_missing(client=client, readers=readers) == 4
        kept = VersionContent.objects.select_related("version")
        assert {c.state for c in kept} == {ContentState.KNOWN}
        return client.calls, {c.version.version: c.digest for c in kept}

    one_calls, one = digest_all(readers=1)
    many_calls, many = digest_all(readers=3)
    assert many == one and len(set(one.values())) == 4
    assert many_calls == one_calls


def test_the_job_digests_once_and_a_second_run_reads_nothing(
    mlflow_client, unique_name, rq_queue, simple_worker, committed
):
    sync_queue = rq_queue("sync")
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    # The sync that mirrors a new version queues the digest (with the evidence fetch) on commit.
    with committed():
        sync_registry(model=unique_name, client=mlflow_client)
    assert "registry.jobs.digest_content" in [job.func_name for job in sync_queue.get_jobs()]
    # A burst of new versions while the job waits collapses into it.
    assert enqueue_content_digest() is False

    simple_worker(sync_queue)
    first = VersionContent.objects.get(version__model__name=unique_name)
    assert first.state == ContentState.KNOWN

    calls = mlflow_client.calls
    assert enqueue_content_digest() is True
    simple_worker(sync_queue)
    again = VersionContent.objects.get(pk=first.pk)
    assert (again.digest, again.files, again.computed_at) == (
        first.digest,
        first.files,
        first.computed_at,
    )
    assert content.digest_missing(client=mlflow_client) == 0
    assert mlflow_client.calls == calls  # nothing waiting: MLflow is not asked
    # Read and stored again on purpose, the row is the same.
    content.store(version_of(unique_name), content.read_content(version_of(unique_name)))
    assert VersionContent.objects.get(pk=first.pk).digest == first.digest
    assert VersionContent.objects.count() == 1


def test_redis_down_as_the_sync_commits_fails_nothing_and_the_periodic_sync_queues_the_digest(
    mlflow_client, unique_name, rq_queue, committed, settings, caplog
):
    from quorum.localservices import free_port
    from registry.jobs import sync_incremental

    sync_queue = rq_queue("sync")
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    reachable = settings.RQ_QUEUES
    nothing_listens = f"redis://127.0.0.1:{free_port()}/15"
    settings.RQ_QUEUES = {name: {**c, "URL": nothing_listens} for name, c in reachable.items()}

    with committed():
        result = sync_registry(model=unique_name, client=mlflow_client)

    assert result.versions == 1 and content.waiting().count() == 1
    assert "could not queue enqueue_content_digest" in caplog.text
    settings.RQ_QUEUES = reachable
    sync_incremental()
    assert "registry.jobs.digest_content" in [job.func_name for job in sync_queue.get_jobs()]


def test_a_version_whose_source_changed_is_read_again(mlflow_client, unique_name):
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    first = mirrored(mlflow_client, unique_name)[1]
    # The model deleted and registered anew under its name: another v1, another model.
    mlflow_client.delete_model(unique_name)
    register_sklearn_version(mlflow_client, unique_name, columns={"city": "object"})
    sync_registry(model=unique_name, client=mlflow_client)
    version = version_of(unique_name)
    assert version.source != first.source

    assert list(content.waiting()) == [version]
    assert content.digest_missing(client=mlflow_client) == 1

    again = VersionContent.objects.get(pk=first.pk)
    assert again.source == version.source and again.digest != first.digest
    assert again.digest == content.read_content(version, client=mlflow_client).digest


def test_a_large_file_is_streamed_in_chunks_never_read_whole(
    mlflow_client, unique_name, monkeypatch
):
    register_sklearn_version(mlflow_client, unique_name, columns=COLUMNS)
    stored = mirrored(mlflow_client, unique_name)[1]
    weights = os.urandom(6 * 1024 * 1024)
    response = requests.put(
        artifact_url(mlflow_client, stored.location, "weights/large.bin"), data=weights, timeout=30
    )
    assert response.status_code == 200
    chunks: list[int] = []
    read_file = RegistryClient.read_model_file

    def recorded(self, location, path, *, chunk_size):
        for chunk in read_file(self, location, path, chunk_size=chunk_size):
            if path == "weights/large.bin":
                chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(RegistryClient, "read_model_file", recorded)
    chunk_size = 64 * 1024

    tracemalloc.start()
    try:
        fresh = content.read_content(
            version_of(unique_name), client=mlflow_client, readers=2, chunk_size=chunk_size
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert fresh.manifest is not None
    entry = {e.path: e for e in fresh.manifest.files}["weights/large.bin"]
    assert (entry.sha256, entry.size) == (hashlib.sha256(weights).hexdigest(), len(weights))
    assert sum(chunks) == len(weights) and max(chunks) <= chunk_size and len(chunks) >= 96
    assert peak < len(weights) // 3, f"{peak:,} bytes held at once for a {len(weights):,} file"
