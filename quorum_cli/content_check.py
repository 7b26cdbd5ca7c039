"""Are the bytes the ones Quorum approved? `quorum verify`'s comparison of the content digest a
proof names (its in-toto subject) with the model files as they are now: in MLflow (read over its
REST API, `quorum_cli.mlflow_rest`) or in a local copy a deploy step is about to serve
(`--path DIR`). When the proof lists the approved files, the differences are named file by file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from quorum_cli import attestation as proof
from quorum_cli import manifest as content
from quorum_cli import mlflow_rest
from quorum_cli.client import CliError


@dataclass
class ContentResult:
    """The approved digest, the one found, where it was found, and which files differ."""

    expected: str
    actual: str
    checked: str  # "mlflow" or "path"
    where: str
    differences: list[content.FileDifference] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.expected == self.actual

    def as_json(self) -> dict:
        return {
            "expected_sha256": self.expected,
            "actual_sha256": self.actual,
            "checked": self.checked,
            "where": self.where,
            "matches": self.matches,
            "differences": [difference_json(d) for d in self.differences],
        }

    def sentence(self) -> str:
        """Why the content does not match, in one line, naming up to five files."""
        named = "; ".join(str(d) for d in self.differences[:5])
        more = len(self.differences) - 5
        if more > 0:
            named += f"; and {more} more"
        found = "the local copy" if self.checked == "path" else "MLflow's copy"
        return (
            f"{found} ({self.where}) is not the approved content: its digest is "
            f"{self.actual[:12]}…, the proof names {self.expected[:12]}…"
            + (f" ({named})" if named else "")
        )


def difference_json(difference: content.FileDifference) -> dict:
    """A difference as --json prints it: `added`, `removed` or `changed`, with both sides."""
    kind = "removed" if difference.kind == "missing" else difference.kind
    return {
        "path": difference.path,
        "kind": kind,
        "expected": difference.expected.as_json() if difference.expected else None,
        "actual": difference.actual.as_json() if difference.actual else None,
    }


def approved_manifest(verified: proof.Verified) -> content.Manifest | None:
    """The approved files as the signed predicate lists them (None when the proof had to leave
    them out to fit its tag); one whose digest is not the subject's is not trusted."""
    files = (verified.predicate.get("content") or {}).get("files")
    if not isinstance(files, list):
        return None
    try:
        listed = content.Manifest.from_json(files)
    except (content.ManifestError, KeyError, TypeError, ValueError):
        return None
    return listed if listed.digest == verified.content_digest else None


def check(verified: proof.Verified, *, tracking_uri: str, path: str | None) -> ContentResult:
    """Computes the content digest now (the directory `path`, else MLflow's copy where the proof
    says Quorum read it) and compares it with the one the proof names."""
    expected = verified.content_digest
    if not expected:
        raise proof.AttestationError("the proof names no content digest")
    if path:
        try:
            found = content.hash_directory(path)
        except content.ManifestError as error:
            raise CliError(f"--path {path}: {error}") from None
        checked, where = "path", path
    else:
        location = (verified.predicate.get("content") or {}).get("location")
        if not isinstance(location, str) or not location:
            raise proof.AttestationError("the proof does not say where the model's files are")
        found = mlflow_rest.read_manifest(tracking_uri, location)
        checked, where = "mlflow", location
    result = ContentResult(expected=expected, actual=found.digest, checked=checked, where=where)
    if not result.matches and (approved := approved_manifest(verified)) is not None:
        result.differences = content.compare(approved, found)
    return result
