"""What `quorum verify` reads from MLflow, over its REST API alone (no `mlflow` package): a
model version, and the bytes of the model files a proof names, hashed as they stream in.

Authenticates as MLflow's own client does: MLFLOW_TRACKING_TOKEN (bearer), or
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic); MLFLOW_TRACKING_INSECURE_TLS and
MLFLOW_TRACKING_SERVER_CERT_PATH as MLflow reads them.

The files are read where the proof says Quorum read them (its signed `content.location`), through
the tracking server's artifact proxy: `mlflow-artifacts:` locations, listed with
`GET /api/2.0/mlflow-artifacts/artifacts?path=` and downloaded from
`/api/2.0/mlflow-artifacts/artifacts/<path>` a chunk at a time. A location in a store the proxy
does not serve (s3://, gs://, a local path) cannot be read this way: the error says to download
the model and check the copy with `--path`.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit

import requests

from quorum_cli import __version__
from quorum_cli import manifest as content
from quorum_cli.client import CliError

TIMEOUT = 30.0
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
# Listing stops past this many files: a proof's model is never that large, a hostile store may be.
MAX_FILES = 100_000


def insecure_tls() -> bool:
    """MLFLOW_TRACKING_INSECURE_TLS as MLflow reads it (true, 1, false, 0, any case; unset or
    empty: false). Anything else is refused rather than guessed at."""
    raw = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "")
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("", "false", "0"):
        return False
    raise CliError(
        f"MLFLOW_TRACKING_INSECURE_TLS={raw!r} is not a boolean: use true or 1 to skip the TLS "
        "certificate check, false or 0 (or leave it unset) to keep it"
    )


def session() -> requests.Session:
    """A session that authenticates and checks TLS as MLflow's client would."""
    http = requests.Session()
    http.headers.update({"User-Agent": f"quorum-cli/{__version__}"})
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        http.headers["Authorization"] = f"Bearer {token}"
    elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
        http.auth = (
            os.environ["MLFLOW_TRACKING_USERNAME"],
            os.environ.get("MLFLOW_TRACKING_PASSWORD", ""),
        )
    if insecure_tls():
        http.verify = False
    elif cert := os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        http.verify = cert
    return http


def _get(http: requests.Session, tracking_uri: str, path: str, **kwargs) -> requests.Response:
    try:
        return http.get(tracking_uri.rstrip("/") + path, timeout=TIMEOUT, **kwargs)
    except requests.exceptions.InvalidURL as error:
        raise CliError(f"invalid MLflow tracking URI {tracking_uri!r}: {error}") from None
    except requests.RequestException as error:
        raise CliError(f"cannot reach MLflow at {tracking_uri}: {type(error).__name__}") from None


def _json(response: requests.Response, tracking_uri: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CliError(
            f"MLflow at {tracking_uri} answered {response.status_code} without JSON: is it the "
            "tracking server's address?"
        )
    return body


def read_version(tracking_uri: str, model: str, version: int) -> dict | None:
    """The model version as MLflow's REST API answers it; None when it does not exist."""
    response = _get(
        session(),
        tracking_uri,
        "/api/2.0/mlflow/model-versions/get",
        params={"name": model, "version": str(version)},
        headers={"Accept": "application/json"},
    )
    body = _json(response, tracking_uri)
    if response.status_code == 404 or body.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
        return None
    if response.status_code >= 400:
        detail = body.get("message") or body.get("error_code") or response.reason
        raise CliError(f"MLflow at {tracking_uri} refused ({response.status_code}): {detail}")
    found = body.get("model_version")
    if not isinstance(found, dict):
        raise CliError(f"MLflow at {tracking_uri} answered without a model version")
    return found


def proxied_root(location: str) -> str:
    """The path under MLflow's artifact proxy of an `mlflow-artifacts:` location; CliError for a
    store the proxy does not serve."""
    parts = urlsplit(location)
    if parts.scheme != "mlflow-artifacts":
        raise CliError(
            f"the model's files are at {location}, which quorum verify cannot read through "
            "MLflow's REST API: download the model and check the copy with --path DIR"
        )
    return parts.path.strip("/")


def read_manifest(tracking_uri: str, location: str) -> content.Manifest:
    """The manifest of the files under `location` as MLflow serves them now, each file streamed
    and hashed a chunk at a time (never whole in memory)."""
    root = proxied_root(location)
    http = session()

    def read(path: str) -> content.FileEntry:
        url = f"{ARTIFACTS}/{quote(f'{root}/{path}')}"
        response = _get(http, tracking_uri, url, stream=True)
        try:
            if response.status_code != 200:
                raise CliError(
                    f"MLflow at {tracking_uri} answered {response.status_code} for the model "
                    f"file {path}"
                )
            try:
                sha256, size = content.hash_chunks(
                    response.iter_content(chunk_size=content.CHUNK_SIZE)
                )
            except requests.RequestException as error:
                raise CliError(
                    f"reading {path} from MLflow at {tracking_uri} failed: {type(error).__name__}"
                ) from None
        finally:
            response.close()
        return content.FileEntry(path=path, sha256=sha256, size=size)

    try:
        return content.hash_all(_list(http, tracking_uri, root), read)
    except content.ManifestError as error:
        raise CliError(f"the model's files at {location} cannot make a manifest: {error}") from None


def _list(http: requests.Session, tracking_uri: str, root: str) -> list[str]:
    """Every file under `root`, relative to it (the proxy lists one directory per call)."""
    found: list[str] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        where = f"{root}/{relative}" if relative else root
        response = _get(http, tracking_uri, ARTIFACTS, params={"path": where})
        body = _json(response, tracking_uri)
        if response.status_code >= 400:
            detail = body.get("message") or body.get("error_code") or response.reason
            raise CliError(
                f"MLflow at {tracking_uri} refused to list {where} ({response.status_code}): "
                f"{detail}"
            )
        for item in body.get("files") or []:
            name = f"{relative}/{item.get('path')}" if relative else str(item.get("path"))
            if item.get("is_dir"):
                pending.append(name)
            else:
                found.append(content.canonical_path(name))
            if len(found) > MAX_FILES:
                raise CliError(f"more than {MAX_FILES:,} files under {root}")
    return found
