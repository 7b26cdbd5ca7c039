"""Which model versions Quorum holds still, and which of them a run, a logged model or an
artifact path belongs to.

A version is held when it holds a protected stage or alias of its model (`quorum.protected`),
carries one of Quorum's approval proofs (a `quorum.attestation.*` tag), or has an open request in
Quorum (the `quorum.pinned` tag, which Quorum writes when a request opens and removes when the
last one for the version closes). Only Quorum's service identity may write `quorum.*` tags, so
nobody else can release a version by editing them.

The lookups go from what a request names to the few versions it could touch, never over the
whole registry:

- a run id: the versions made from that run (`run_id = '...'`);
- a logged model: the versions registered from `models:/<id>` and those of its source run;
- an artifact path under the server's artifact root: the versions of the run or logged model the
  path lies in (`<experiment>/<run>/artifacts/...`, `<experiment>/models/<id>/artifacts/...`),
  and versions whose source names the path's first directories (`source_path LIKE ...`, for
  versions registered from a plain artifact URI); then each candidate's content location is
  compared with the path.

That is a few indexed searches of the registry's database per guarded request (the `LIKE` one
scans the versions' sources), done in the request that asks; nothing is cached across requests,
so a pin Quorum just wrote counts at once. Results are kept for the rest of one request.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

from mlflow_quorum_guard.protection import Protection, protection_of

PINNED_TAG = "quorum.pinned"
PROOF_TAG_PREFIX = "quorum.attestation."
SERVED_ANCHOR = "/api/2.0/mlflow-artifacts/artifacts/"
PAGE = 1000


class LookupFailed(RuntimeError):
    """The registry or tracking store could not say what a request touches: refuse it."""


@dataclass(frozen=True)
class Held:
    """A held version and why it is held, in words for a refusal."""

    name: str
    version: str
    why: str

    def describe(self) -> str:
        return f"version {self.version} of registered model '{self.name}', which {self.why}"


@dataclass(frozen=True)
class Location:
    """Where content lives: `root` is "served" for the server's own artifact root (the
    `mlflow-artifacts` routes), else the URI's scheme and host; `path` has no leading slash."""

    root: str
    path: str

    def overlaps(self, other: Location, *, deleting: bool) -> bool:
        """A write at `self` changes `other`'s content when it lies inside it; a delete also
        when `other` lies inside what is deleted."""
        if self.root != other.root:
            return False
        return _inside(self.path, other.path) or (deleting and _inside(other.path, self.path))


def _inside(path: str, directory: str) -> bool:
    return not directory or path == directory or path.startswith(directory + "/")


def location_of(uri: str, *, destination: str = "") -> Location | None:
    """The location an artifact URI names, or None for a URI that names no place (models:/...)."""
    if destination and (uri == destination or uri.startswith(destination.rstrip("/") + "/")):
        return Location("served", _clean(uri[len(destination) :]))
    parsed = urlparse(uri)
    if parsed.scheme == "mlflow-artifacts":
        return Location("served", _clean(parsed.path))
    if parsed.scheme in ("http", "https") and SERVED_ANCHOR in parsed.path:
        return Location("served", _clean(parsed.path.split(SERVED_ANCHOR, 1)[1]))
    if parsed.scheme in ("runs", "models"):
        return None
    root = f"{parsed.scheme or 'file'}://{parsed.netloc}"
    return Location(root, _clean(parsed.path))


def _clean(path: str) -> str:
    normal = posixpath.normpath("/" + path.strip("/"))
    return normal.strip("/")


def _quoted(value: str) -> str:
    # A quote would end MLflow's filter string; "_" matches any one character in LIKE and is
    # harmless elsewhere (only more candidates, each compared exactly afterwards).
    return value.replace("'", "_").replace('"', "_").replace("\\", "_")


class Holdings:
    """One request's view of what Quorum holds; every store read is kept for the request."""

    def __init__(self, *, registry, tracking, default_targets, request_url, destination=""):
        self.registry = registry
        self.tracking = tracking
        self.default_targets = default_targets
        self.request_url = request_url
        self.destination = destination
        self._models: dict[str, tuple[Protection, dict[str, str]]] = {}
        self._searches: dict[str, list] = {}

    # -- held or not ---------------------------------------------------------------------------

    def why_held(self, version) -> str | None:
        protection, aliases = self._model(version.name)
        mine = [alias for alias, number in aliases.items() if str(number) == str(version.version)]
        held = protection.held_targets(stages=[version.current_stage], aliases=mine)
        if held:
            return f"holds {', '.join(held)}"
        tags = version.tags or {}
        if any(key.startswith(PROOF_TAG_PREFIX) for key in tags):
            return "carries Quorum's approval proof"
        if PINNED_TAG in tags:
            return "has an open request in Quorum"
        return None

    def held(self, versions: Iterable) -> list[Held]:
        found: dict[tuple[str, str], Held] = {}
        for version in versions:
            key = (version.name, str(version.version))
            if key not in found and (why := self.why_held(version)):
                found[key] = Held(version.name, str(version.version), why)
        return [found[key] for key in sorted(found)]

    def _model(self, name: str) -> tuple[Protection, dict[str, str]]:
        if name not in self._models:
            model = self.registry.get_registered_model(name)
            protection = protection_of(
                model.tags,
                default_targets=self.default_targets,
                default_request_url=self.request_url,
            )
            self._models[name] = (protection, dict(model.aliases or {}))
        return self._models[name]

    # -- from what a request names to versions -------------------------------------------------

    def search(self, filter_string: str) -> list:
        if filter_string not in self._searches:
            versions, token = [], None
            while True:
                page = self.registry.search_model_versions(
                    filter_string, max_results=PAGE, page_token=token
                )
                versions.extend(page)
                token = page.token
                if not token:
                    break
            self._searches[filter_string] = versions
        return self._searches[filter_string]

    def held_for_runs(self, run_ids: list[str]) -> list[Held]:
        """Held versions made from any of these runs (what a run's metrics and params are)."""
        versions = []
        for start in range(0, len(run_ids), 100):
            chunk = ", ".join(f"'{_quoted(r)}'" for r in run_ids[start : start + 100])
            versions += self.search(f"run_id IN ({chunk})")
        return self.held(versions)

    def held_for_logged_model(self, model_id: str) -> list[Held]:
        """Held versions registered from this logged model, or whose files are its files."""
        model = self.tracking.get_logged_model(model_id)
        where = location_of(model.artifact_location, destination=self.destination)
        by_source = self.search(f"source_path = 'models:/{_quoted(model_id)}'")
        held = self.held(by_source)
        if where is not None:
            held += self.held_at(where, deleting=True, runs=[model.source_run_id])
        return _unique(held)

    def held_at(self, where: Location, *, deleting: bool, runs: Iterable[str | None] = ()):
        """Held versions whose content a write (or delete) at `where` would change."""
        candidates = list(self._candidates(where, runs))
        return self.held(v for v in candidates if self._touches(v, where, deleting))

    def _candidates(self, where: Location, runs: Iterable[str | None]):
        run_ids = {r for r in runs if r}
        parts = where.path.split("/") if where.path else []
        if where.root == "served" and len(parts) >= 2:
            if parts[1] == "models" and len(parts) >= 3:
                yield from self.search(f"source_path = 'models:/{_quoted(parts[2])}'")
                logged = _absent(self.tracking.get_logged_model, parts[2])
                if logged is not None and logged.source_run_id:
                    run_ids.add(logged.source_run_id)
            elif parts[1] != "models":
                run_ids.add(parts[1])
        for run_id in sorted(run_ids):
            yield from self.search(f"run_id = '{_quoted(run_id)}'")
        # Versions registered from a plain URI: their source ends in a path that starts with the
        # same first directories as `where` (two, or three under a logged model's directory).
        depth = 3 if len(parts) >= 3 and parts[1] == "models" else 2
        head = "/".join(parts[:depth])
        if head:
            yield from self.search(f"source_path LIKE '%/{_quoted(head)}%'")
        if len(parts) >= 1:
            yield from self.search(f"source_path LIKE '%/{_quoted(parts[0])}'")
            yield from self.search(f"source_path LIKE '%/{_quoted(parts[0])}/'")

    def _touches(self, version, where: Location, deleting: bool) -> bool:
        content = self.content_location(version)
        return content is not None and where.overlaps(content, deleting=deleting)

    def content_location(self, version) -> Location | None:
        """Where the version's files are: its source, resolved through its run or logged model
        for `runs:/` and `models:/m-...` sources."""
        uri = self.registry.get_model_version_download_uri(version.name, version.version)
        return self.resolve(uri or version.source or "")

    def resolve(self, uri: str) -> Location | None:
        # A run or logged model that is gone (None) leaves nothing of the version to change.
        scheme, _, rest = uri.partition(":")
        first, _, sub = rest.lstrip("/").partition("/")  # runs:/<run>/<path>, models:/m-<id>
        if scheme == "runs":
            run = _absent(self.tracking.get_run, first)
            if run is None:
                return None
            base = run.info.artifact_uri.rstrip("/")
            sub = sub.strip("/")
            return location_of(f"{base}/{sub}" if sub else base, destination=self.destination)
        if scheme == "models" and first.startswith("m-"):
            logged = _absent(self.tracking.get_logged_model, first)
            if logged is None:
                return None
            return location_of(logged.artifact_location, destination=self.destination)
        return location_of(uri, destination=self.destination)


def _unique(held: list[Held]) -> list[Held]:
    return sorted(
        {(h.name, h.version): h for h in held}.values(), key=lambda h: (h.name, h.version)
    )


def _absent(call, *args):
    """`call(*args)`, or None when MLflow says what it names does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return call(*args)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
