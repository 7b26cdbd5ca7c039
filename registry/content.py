"""The content digest of each version, for "approve the bytes, not the name": a manifest of its
model files (every file under its model artifact location: MLmodel, the model files,
requirements, …) with a sha256 per file, and one digest over it.

The manifest format and its digests are `quorum_cli.manifest`'s (OpenSSF model signing's
manifest; `quorum verify --path` computes the same from a local copy). Here the files come from
MLflow's artifact API (`RegistryClient.model_files`, `read_model_file`), streamed a chunk at a
time by a bounded pool of threads (QUORUM_CONTENT_READERS), never whole in memory, several
versions at once (QUORUM_VERSION_READERS).

Like the evidence packet, the digest is read by a worker, never by the sync: after a sync mirrors
new versions (`registry.jobs.on_new_versions` queues one coalesced job for every version
waiting), and again for a version whose source changed. It is stored in `VersionContent`; pages
read only that. A version whose files cannot be read is stored `unknown` with the reason, and
anything that needs its content must refuse it; MLflow being unreachable stops the batch and
leaves the versions waiting for the next job.

`read_content` reads a version's files afresh and stores nothing: what checks that the bytes are
still the approved ones (the transition worker, `quorum verify`) compares its digest, and
`quorum_cli.manifest.compare` says which files differ.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.dispatch import Signal

from quorum_cli.manifest import (
    FileEntry,
    Manifest,
    ManifestError,
    canonical_path,
    hash_all,
    hash_chunks,
)

from .mlflow_client import MlflowError, ModelFiles, RegistryClient
from .models import ContentState, ModelVersion, VersionContent
from .reading_pool import read_each
from .storable import printable

logger = logging.getLogger(__name__)

# Sent after a batch of digests is stored, with `version_ids`, so what relies on a version's
# content can look again.
content_stored = Signal()

REASON_MAX = 2000


@dataclass(frozen=True)
class ReadContent:
    """What reading a version's files gave: their manifest, or why there is none."""

    manifest: Manifest | None
    reason: str = ""
    location: str = ""
    seconds: float = 0.0

    @property
    def digest(self) -> str:
        return self.manifest.digest if self.manifest is not None else ""


def read_content(
    version: ModelVersion,
    *,
    client: RegistryClient | None = None,
    readers: int | None = None,
    chunk_size: int | None = None,
    max_files: int | None = None,
    max_bytes: int | None = None,
) -> ReadContent:
    """Reads every file of `version`'s model from MLflow now and returns their manifest, or the
    reason it cannot be had. Stores nothing. Only MLflow being unreachable raises
    (`MlflowError`): a version is never called unknown because MLflow was down."""
    client = client or RegistryClient()
    started = time.perf_counter()

    def unknown(reason: str, location: str = "") -> ReadContent:
        return ReadContent(
            manifest=None,
            reason=printable(reason, REASON_MAX),
            location=location,
            seconds=time.perf_counter() - started,
        )

    try:
        listing = client.model_files(
            version.model.name,
            version.version,
            max_files=max_files or settings.QUORUM_CONTENT_MAX_FILES,
        )
    except MlflowError as error:
        if error.unreachable:
            raise
        return unknown(f"its files could not be listed: {error}")
    except Exception as error:  # artifact stores raise their own errors (credentials, ...)
        return unknown(f"its files could not be listed: {_describe(error)}")
    if not listing.files:
        return unknown(f"MLflow lists no files at {listing.location}", listing.location)
    listed = sum(item.size or 0 for item in listing.files)
    limit = max_bytes or settings.QUORUM_CONTENT_MAX_BYTES
    if listed > limit:
        return unknown(
            f"its files add up to {listed:,} bytes, more than QUORUM_CONTENT_MAX_BYTES "
            f"({limit:,}) allows reading",
            listing.location,
        )
    try:
        for item in listing.files:
            canonical_path(item.path)  # before reading anything: a hostile name is refused
        manifest = _hash_files(
            client,
            listing,
            readers=readers or settings.QUORUM_CONTENT_READERS,
            chunk_size=chunk_size or settings.QUORUM_CONTENT_CHUNK_BYTES,
        )
    except MlflowError as error:
        if error.unreachable:
            raise
        return unknown(f"its files could not be read: {error}", listing.location)
    except ManifestError as error:
        return unknown(f"its files cannot make a manifest: {error}", listing.location)
    except Exception as error:
        return unknown(f"its files could not be read: {_describe(error)}", listing.location)
    return ReadContent(
        manifest=manifest, location=listing.location, seconds=time.perf_counter() - started
    )


def _hash_files(
    client: RegistryClient, listing: ModelFiles, *, readers: int, chunk_size: int
) -> Manifest:
    """Each file streamed through a client of its thread's own (`fork`: `calls` is no counter
    two threads may share), whose calls are added back to `client`'s."""
    forks: list[RegistryClient] = []
    local = threading.local()

    def read(path: str) -> FileEntry:
        reader = getattr(local, "reader", None)
        if reader is None:
            reader = local.reader = client.fork()
            forks.append(reader)
        sha256, size = hash_chunks(
            reader.read_model_file(listing.location, path, chunk_size=chunk_size)
        )
        return FileEntry(path=path, sha256=sha256, size=size)

    try:
        return hash_all([item.path for item in listing.files], read, workers=readers)
    finally:
        client.calls += sum(reader.calls for reader in forks)


def store(version: ModelVersion, read: ReadContent) -> VersionContent:
    """Keeps what `read_content` gave for `version`, replacing what was kept for another source;
    storing the same read twice leaves the same row."""
    manifest = read.manifest
    fields = {
        "state": ContentState.KNOWN if manifest is not None else ContentState.UNKNOWN,
        "digest": read.digest,
        "model_signing_digest": manifest.model_signing_digest if manifest is not None else "",
        "files": manifest.as_json() if manifest is not None else [],
        "file_count": len(manifest.files) if manifest is not None else 0,
        "total_size": manifest.total_size if manifest is not None else None,
        "reason": read.reason,
        "source": version.source,
        "location": read.location,
        "seconds": read.seconds,
    }
    content, _ = VersionContent.objects.update_or_create(version=version, defaults=fields)
    return content


def waiting(*, retry_unknown: bool = False) -> QuerySet[ModelVersion]:
    """Live versions whose content is to be read: never read, or read for another source (and,
    with `retry_unknown`, those whose files could not be read last time)."""
    wanted = Q(content__isnull=True) | ~Q(content__source=F("source"))
    if retry_unknown:
        wanted |= Q(content__state=ContentState.UNKNOWN)
    return ModelVersion.objects.live().filter(wanted)


def digest_missing(
    *,
    client: RegistryClient | None = None,
    budget_seconds: float | None = None,
    retry_unknown: bool = False,
    readers: int | None = None,
) -> int:
    """Reads and stores the content of waiting versions, oldest first, `readers` versions at a
    time (QUORUM_VERSION_READERS), until none is left or `budget_seconds` have passed; returns
    how many were stored. MLflow being unreachable stops the batch (raises) after storing what
    was read before it, and leaves the rest waiting."""
    client = client or RegistryClient()
    budget = settings.QUORUM_CONTENT_BATCH_SECONDS if budget_seconds is None else budget_seconds
    at_once = max(1, readers or settings.QUORUM_VERSION_READERS)
    started = time.monotonic()
    stored: list[int] = []
    done: set[int] = set()
    try:
        while time.monotonic() - started < budget:
            batch = list(
                waiting(retry_unknown=retry_unknown)
                .exclude(pk__in=done)
                .select_related("model")
                .order_by("pk")[:at_once]
            )
            if not batch:
                break
            done.update(version.pk for version in batch)
            for version, read in read_each(client, batch, _read, readers=at_once):
                store(version, read)
                stored.append(version.pk)
    finally:
        if stored:
            with transaction.atomic():
                content_stored.send(sender=VersionContent, version_ids=stored)
    return len(stored)


def _read(client: RegistryClient, version: ModelVersion) -> ReadContent:
    return read_content(version, client=client)


def known_digest(version: ModelVersion | None) -> str:
    """The digest of `version`'s files when they were read and known, else "": what a request on
    it pins now."""
    stored = content_of(version)
    return stored.digest if stored is not None and stored.known else ""


def content_of(version: ModelVersion | None) -> VersionContent | None:
    """`version`'s stored content, None when it has not been read (loaded with the version by
    `select_related("content")` where a page shows it)."""
    if version is None:
        return None
    try:
        return version.content
    except ObjectDoesNotExist:
        return None


def _describe(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
