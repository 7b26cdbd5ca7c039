"""The content manifest on a local directory (quorum_cli.manifest): model_signing's order, names
and digests, canonical JSON, which files differ, and what cannot make a manifest."""

from __future__ import annotations

import hashlib
import os

import pytest

from quorum_cli import manifest
from quorum_cli.manifest import FileEntry, ManifestError

# Names whose order differs by components and by string (`a/b` < `a-b/c`), dotfiles (no git
# files: model_signing leaves those out by default), non-ASCII, spaces, quotes, backslashes.
AWKWARD = {
    "MLmodel": b"flavors: {}\n",
    "a/b": b"1",
    "a-b/c": b"2",
    "a.b": b"3",
    "B": b"4",
    "caf\u00e9.txt": b"5",
    'with space/and "quotes"\'': b"6",
    "back\\slash": b"7",
    ".hidden": b"8",
    "empty": b"",
    "deep/er/and/deeper/model.bin": os.urandom(3000),
}


def write_tree(root, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def model_signing_view(root) -> tuple[list[dict], str]:
    """model_signing's resources and subject digest for `root`, every file included, as its
    signing payload (the in-toto statement it signs) states them."""
    from model_signing import hashing
    from model_signing._signing.signing import Payload

    hashed = hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False).hash(root)
    statement = Payload(hashed).statement.pb
    subject = statement.subject[0].digest["sha256"]
    resources = [dict(item) for item in statement.predicate["resources"]]
    return resources, subject


def test_manifest_agrees_with_model_signing_on_awkward_names(tmp_path):
    write_tree(tmp_path, AWKWARD)

    ours = manifest.hash_directory(tmp_path)
    resources, subject = model_signing_view(tmp_path)

    assert ours.resources() == resources  # same files, same order, same sha256 each
    assert ours.model_signing_digest == subject
    assert ours.digest == hashlib.sha256(manifest.canonical_json(resources)).hexdigest()
    assert [entry.path for entry in ours.files][:3] == [".hidden", "B", "MLmodel"]
    assert [entry.path for entry in ours.files].index("a/b") < [
        entry.path for entry in ours.files
    ].index("a-b/c")
    assert {entry.path: entry.size for entry in ours.files}["empty"] == 0


def test_canonical_json_is_rfc_8785(tmp_path):
    import rfc8785

    write_tree(tmp_path, AWKWARD | {"new\nline": b"9", "tab\there": b"10"})
    resources = manifest.hash_directory(tmp_path).resources()

    assert manifest.canonical_json(resources) == rfc8785.dumps(resources)


def test_chunk_size_and_threads_do_not_change_the_digest(tmp_path):
    write_tree(tmp_path, AWKWARD)

    one = manifest.hash_directory(tmp_path, workers=1, chunk_size=7)
    many = manifest.hash_directory(tmp_path, workers=8, chunk_size=1 << 20)

    assert one == many and one.digest == many.digest


def test_renaming_a_file_changes_the_digest_though_model_signings_subject_keeps(tmp_path):
    write_tree(tmp_path, {"MLmodel": b"m", "model.pkl": b"weights", "requirements.txt": b"r"})
    before = manifest.hash_directory(tmp_path)
    # Still between its neighbours in the order: the list of file digests is unchanged.
    (tmp_path / "model.pkl").rename(tmp_path / "model.pkl.old")

    after = manifest.hash_directory(tmp_path)

    assert after.model_signing_digest == before.model_signing_digest
    assert after.digest != before.digest
    assert [str(d) for d in manifest.compare(before, after)] == [
        "model.pkl: missing",
        "model.pkl.old: added (7 bytes)",
    ]


def test_compare_names_each_changed_missing_and_added_file(tmp_path):
    write_tree(tmp_path, {"MLmodel": b"m", "model.pkl": b"weights", "conda.yaml": b"c"})
    before = manifest.hash_directory(tmp_path)
    (tmp_path / "model.pkl").write_bytes(b"evil weights")
    (tmp_path / "conda.yaml").unlink()
    (tmp_path / "extra.py").write_bytes(b"import os")

    differences = manifest.compare(before, manifest.hash_directory(tmp_path))

    assert [(d.path, d.kind) for d in differences] == [
        ("conda.yaml", "missing"),
        ("extra.py", "added"),
        ("model.pkl", "changed"),
    ]
    assert str(differences[2]).startswith("model.pkl: changed (sha256 ")
    assert str(differences[2]).endswith(", 7 → 12 bytes)")
    assert manifest.compare(before, before) == []


def test_manifest_round_trips_through_its_json_form(tmp_path):
    write_tree(tmp_path, AWKWARD)
    made = manifest.hash_directory(tmp_path)

    assert manifest.Manifest.from_json(made.as_json()) == made


def test_symbolic_links_are_refused_as_model_signing_refuses_them(tmp_path):
    write_tree(tmp_path, {"model.pkl": b"w"})
    (tmp_path / "link.pkl").symlink_to(tmp_path / "model.pkl")

    with pytest.raises(ManifestError, match="link.pkl is a symbolic link"):
        manifest.hash_directory(tmp_path)


def test_a_path_that_is_no_directory_is_refused(tmp_path):
    write_tree(tmp_path, {"model.pkl": b"w"})

    with pytest.raises(ManifestError, match="is not a directory"):
        manifest.hash_directory(tmp_path / "model.pkl")
    with pytest.raises(ManifestError, match="cannot be read"):
        manifest.hash_directory(tmp_path / "missing")


@pytest.mark.parametrize("path", ["", "/etc/passwd", "a//b", "./a", "a/../b", "a/", "nul\x00"])
def test_paths_that_are_not_canonical_are_refused(path):
    with pytest.raises(ManifestError):
        manifest.build([FileEntry(path=path, sha256="00" * 32, size=0)])


def test_a_path_listed_twice_is_refused():
    entry = FileEntry(path="model.pkl", sha256="00" * 32, size=0)

    with pytest.raises(ManifestError, match="listed twice"):
        manifest.build([entry, entry])
