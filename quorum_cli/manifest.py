"""A model's content manifest: every file under its model directory with its sha256 and size,
and one digest over them, for "approve the bytes, not the name".

One format, shared by the server (`registry.content` reads a version's files from MLflow) and
`quorum verify --path DIR` (a local copy): this module imports nothing beyond the standard
library, so the CLI can check a directory without Django or MLflow.

The manifest is OpenSSF model signing's (the `model-signing` package, predicate
`https://model_signing/signature/v1.0`, serialization method "files" with sha256): one resource per
regular file, named by its path relative to the model directory in POSIX form, ordered as
model_signing orders them (by path components), each with the sha256 of its bytes. Two digests
are derived from it:

- `Manifest.digest`, Quorum's content digest: the sha256 of the resources list as model_signing's
  predicate holds it (`[{"algorithm", "digest", "name"}, ...]`), written as canonical JSON (keys
  sorted, no whitespace, UTF-8: RFC 8785's form for a document of strings). It covers names and
  bytes: renaming, adding, removing or rewriting any file changes it.
- `Manifest.model_signing_digest`: the digest model_signing puts in its statement's subject, a
  sha256 over the files' digests alone, in order. It is what a model_signing signature names, so a
  signed model can be matched with it; it does not cover the names (a file renamed without moving
  in the order keeps it), which is why Quorum's own digest is the one approvals bind.

Files are read in chunks (`CHUNK_SIZE`), never whole, and a directory's files by a bounded pool of
threads (hashlib releases the GIL on large updates). Symbolic links and special files are refused,
as model_signing refuses them by default, and so are paths that are not canonical: a manifest
names every file one way only.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

HASH_ALGORITHM = "sha256"
# What model_signing reads at a time too; any size gives the same digests.
CHUNK_SIZE = 1024 * 1024
# Files hashed at once: reading overlaps hashing; more threads than this only contend for disk.
WORKERS = 4


class ManifestError(ValueError):
    """A directory or listing that cannot make a manifest; the message says which path and why."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a model: its canonical path, the sha256 of its bytes, and their count."""

    path: str
    sha256: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> FileEntry:
        return cls(path=str(item["path"]), sha256=str(item["sha256"]), size=int(item["size"]))


@dataclass(frozen=True)
class FileDifference:
    """A path whose content differs between two manifests: `changed` (both have it), `missing`
    (only the expected one has it) or `added` (only the actual one has it)."""

    path: str
    kind: str
    expected: FileEntry | None
    actual: FileEntry | None

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"{self.path}: missing"
        if self.kind == "added":
            return f"{self.path}: added ({self.actual.size if self.actual else 0:,} bytes)"
        assert self.expected is not None and self.actual is not None
        return (
            f"{self.path}: changed (sha256 {self.expected.sha256[:12]}… → "
            f"{self.actual.sha256[:12]}…, {self.expected.size:,} → {self.actual.size:,} bytes)"
        )


@dataclass(frozen=True)
class Manifest:
    """Every file of a model in canonical order (`build` makes one from entries in any order)."""

    files: tuple[FileEntry, ...]

    @property
    def digest(self) -> str:
        """Quorum's content digest: sha256 over the canonical JSON of the resources."""
        return hashlib.sha256(canonical_json(self.resources())).hexdigest()

    @property
    def model_signing_digest(self) -> str:
        """The digest model_signing's statement names as its subject (file digests only)."""
        hasher = hashlib.sha256()
        for entry in self.files:
            hasher.update(bytes.fromhex(entry.sha256))
        return hasher.hexdigest()

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.files)

    def resources(self) -> list[dict[str, str]]:
        """The files as model_signing's predicate lists them under "resources"."""
        return [
            {"algorithm": HASH_ALGORITHM, "digest": entry.sha256, "name": entry.path}
            for entry in self.files
        ]

    def as_json(self) -> list[dict[str, Any]]:
        return [entry.as_json() for entry in self.files]

    @classmethod
    def from_json(cls, items: Iterable[dict[str, Any]]) -> Manifest:
        return build(FileEntry.from_json(item) for item in items)


def canonical_json(document: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8 (RFC 8785 for documents of strings and lists)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def canonical_path(path: str) -> str:
    """`path` if it names a file inside a model directory the one way a manifest may: relative,
    POSIX, normalised (no empty, `.` or `..` parts), UTF-8; raises `ManifestError` otherwise."""
    if not path or path.startswith("/") or "\x00" in path:
        raise ManifestError(f"{path!r} is not a relative POSIX path")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"{path!r} is not a normalised path inside the model directory")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError(f"{path!r} is not valid UTF-8") from None
    return path


def order_key(path: str) -> tuple[str, ...]:
    """model_signing's order: by path components (as `PurePosixPath` compares), not by string,
    so `a/b` comes before `a-b/c`."""
    return tuple(PurePosixPath(path).parts)


def build(entries: Iterable[FileEntry]) -> Manifest:
    """A manifest of `entries` in canonical order; raises `ManifestError` for a path that is not
    canonical or is given twice."""
    files = sorted(entries, key=lambda entry: order_key(canonical_path(entry.path)))
    for before, after in zip(files, files[1:], strict=False):
        if before.path == after.path:
            raise ManifestError(f"{after.path!r} is listed twice")
    return Manifest(tuple(files))


def hash_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """The sha256 (hex) and byte count of a stream of chunks, holding one chunk at a time."""
    hasher = hashlib.sha256()
    size = 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def file_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


def hash_file(root: Path, path: str, chunk_size: int = CHUNK_SIZE) -> FileEntry:
    try:
        sha256, size = hash_chunks(file_chunks(root / path, chunk_size))
    except OSError as error:
        raise ManifestError(f"{path} cannot be read: {error.strerror or error}") from None
    return FileEntry(path=path, sha256=sha256, size=size)


def hash_all(
    paths: Iterable[str],
    read: Callable[[str], FileEntry],
    *,
    workers: int = WORKERS,
) -> Manifest:
    """The manifest of `paths`, each read by `read` (a local file, a remote stream) on a pool of
    at most `workers` threads."""
    paths = list(paths)
    if not paths:
        return Manifest(())
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(paths))))
    try:
        return build(pool.map(read, paths))
    finally:
        # After a failure, the files not started yet are not read for nothing.
        pool.shutdown(wait=True, cancel_futures=True)


def list_directory(root: Path) -> list[str]:
    """Every regular file under `root`, as canonical paths relative to it; raises
    `ManifestError` for a symbolic link or a special file (model_signing's default)."""
    try:
        top = os.stat(root, follow_symlinks=False)
    except OSError as error:
        raise ManifestError(f"{root} cannot be read: {error.strerror or error}") from None
    if not stat.S_ISDIR(top.st_mode):
        raise ManifestError(f"{root} is not a directory")
    found: list[str] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(root / relative if relative else root) as entries:
            for entry in entries:
                path = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_symlink():
                    raise ManifestError(f"{path} is a symbolic link: a manifest holds files only")
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif entry.is_file(follow_symlinks=False):
                    found.append(canonical_path(_decoded(path)))
                else:
                    raise ManifestError(f"{path} is neither a file nor a directory")
    return found


def hash_directory(
    root: str | os.PathLike[str], *, workers: int = WORKERS, chunk_size: int = CHUNK_SIZE
) -> Manifest:
    """The manifest of every file under the directory `root` (a local copy of a model)."""
    base = Path(root)
    return hash_all(
        list_directory(base), lambda path: hash_file(base, path, chunk_size), workers=workers
    )


def compare(expected: Manifest, actual: Manifest) -> list[FileDifference]:
    """Which files differ between two manifests, in canonical order; empty when they agree."""
    before = {entry.path: entry for entry in expected.files}
    after = {entry.path: entry for entry in actual.files}
    differences = []
    for path in sorted(before.keys() | after.keys(), key=order_key):
        old, new = before.get(path), after.get(path)
        if new is None:
            differences.append(FileDifference(path, "missing", old, None))
        elif old is None:
            differences.append(FileDifference(path, "added", None, new))
        elif old.sha256 != new.sha256 or old.size != new.size:
            differences.append(FileDifference(path, "changed", old, new))
    return differences


def _decoded(path: str) -> str:
    # A name that is not UTF-8 arrives with surrogate escapes: refuse it by its printable form.
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        printable = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise ManifestError(f"{printable!r} is not valid UTF-8") from None
    return path
