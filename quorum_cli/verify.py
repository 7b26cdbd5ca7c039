"""`quorum verify MODEL VERSION --target T`: did this version really go through Quorum?

Reads the version's proof tag from MLflow directly (its REST API, MLFLOW_TRACKING_URI), checks
the DSSE signature against Quorum's public keys (a file, for offline use, or fetched from a
Quorum server) and that the signed Statement names exactly this model, version and target and
the version's run and source as MLflow has them. Exit codes: 0 verified; 1 no proof, or one that
is malformed, forged, signed by an unknown key or for another model, version or target; 2 usage
or connection errors; 4 keys that would come over plain HTTP from another host. Every outcome is
one line.

Keys fetched from a server are what every check trusts: over plain `http://` anyone on the path
could hand over their own key and make a forged proof verify. So a key server must be `https://`
(every redirect too), or this machine itself (localhost, 127.0.0.1, ::1), unless
`--insecure-keys` says to accept the risk.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Callable
from typing import NoReturn
from urllib.parse import urlsplit

import requests

from quorum_cli import __version__
from quorum_cli import attestation as proof
from quorum_cli.client import CliError

EXIT_VERIFIED = 0
EXIT_NOT_VERIFIED = 1
EXIT_INSECURE_KEYS = 4
TIMEOUT = 30.0


class NotVerified(CliError):
    def __init__(self, message: str):
        super().__init__(message, exit_code=EXIT_NOT_VERIFIED)


class InsecureKeys(CliError):
    """The public keys would come over plain HTTP from another host: not trusted."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=EXIT_INSECURE_KEYS)


def add_parser(commands) -> argparse.ArgumentParser:
    verify = commands.add_parser(
        "verify",
        help="check the signed approval proof on a model version (for deploy steps)",
        description="Check that VERSION of MODEL carries a valid proof, signed by Quorum, that "
        "it was approved for TARGET. Exits 0 when it does, 1 when the proof is missing, "
        "forged, signed by an unknown key or for another model, version or target, 2 on usage "
        "or connection errors, 4 when --server is plain http:// to another host (without "
        "--insecure-keys).",
    )
    verify.add_argument("model")
    verify.add_argument("version")
    verify.add_argument("--target", required=True, help="Production, Staging, Archived or @alias")
    keys = verify.add_mutually_exclusive_group()
    keys.add_argument(
        "--key",
        metavar="FILE",
        help="Quorum's public key(s): PEM, or the JSON saved from /api/v1/keys (works offline)",
    )
    keys.add_argument(
        "--server",
        metavar="URL",
        help="fetch the public keys from this Quorum (default without --key: $QUORUM_URL); "
        "https://, or http:// on this machine only",
    )
    verify.add_argument(
        "--insecure-keys",
        action="store_true",
        help="accept keys fetched over plain http:// from another host (anyone on the network "
        "path could swap them)",
    )
    verify.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="the MLflow tracking server (default: $MLFLOW_TRACKING_URI)",
    )
    verify.add_argument(
        "--json", action="store_true", help="print the verified Statement as JSON on stdout"
    )
    return verify


def run(args: argparse.Namespace, usage_error: Callable[[str], NoReturn]) -> int:
    try:
        version = int(args.version)
    except ValueError:
        usage_error(f"VERSION must be a whole number, got {args.version!r}")
    if version < 1:
        usage_error(f"VERSION must be 1 or more, got {version}")
    try:
        tag = proof.tag_for(args.target)
    except ValueError as error:
        usage_error(f"--target: {error}")
    server = args.server or (None if args.key else os.environ.get("QUORUM_URL"))
    if not args.tracking_uri:
        usage_error("no MLflow: pass --tracking-uri or set MLFLOW_TRACKING_URI")
    if not args.tracking_uri.startswith(("http://", "https://")):
        usage_error(
            f"--tracking-uri {args.tracking_uri!r}: quorum verify reads MLflow's REST API, so "
            "it needs the tracking server's http:// or https:// address"
        )

    if args.key:
        keys = keys_from_file(args.key)
    elif server:
        keys = keys_from_server(server, insecure=args.insecure_keys)
    else:
        usage_error("no public key: pass --key FILE, or --server URL (or set QUORUM_URL)")
    found = read_version(args.tracking_uri, args.model, version)
    what = f"{args.model} version {version}"
    if found is None:
        raise NotVerified(f"NOT VERIFIED: {what} is not registered in MLflow")
    tags = {t.get("key"): t.get("value") for t in found.get("tags", []) if isinstance(t, dict)}
    if tag not in tags:
        others = sorted(filter(None, (proof.target_of_tag(key) for key in tags if key)))
        hint = f"; it has proofs for {', '.join(others)} only" if others else ""
        raise NotVerified(
            f"NOT VERIFIED: {what} has no approval proof for {args.target} (no tag {tag}): it "
            f"was not promoted there through Quorum{hint}"
        )
    try:
        verified = proof.verify_envelope(str(tags[tag]), keys)
        proof.check_names(verified, model=args.model, version=version, target=args.target)
        proof.check_registration(
            verified, run_id=found.get("run_id") or "", source=found.get("source") or ""
        )
    except proof.AttestationError as error:
        raise NotVerified(f"NOT VERIFIED: {what} → {args.target}: {error}") from None
    if args.json:
        print(json.dumps(verified.statement, indent=2, sort_keys=True), flush=True)
    print(summary(verified, what, args.target), file=sys.stderr if args.json else sys.stdout)
    return EXIT_VERIFIED


def summary(verified: proof.Verified, what: str, target: str) -> str:
    predicate = verified.predicate
    approvers = predicate.get("approvers") or []
    if approvers:
        people = ", ".join(f"{a.get('user')} ({a.get('group')})" for a in approvers)
    elif omitted := predicate.get("approvers_omitted"):
        people = f"{omitted.get('count')} approvers"
    else:
        people = "its policy's gates (no vote needed)"
    policy = (predicate.get("policy") or {}).get("name")
    url = (predicate.get("request") or {}).get("url")
    return (
        f"verified: {what} was approved for {target} by {people} under policy {policy!r}, "
        f"signed by key {proof.short(verified.keyid)}; {url}"
    )


# -- keys -----------------------------------------------------------------------------------------


def keys_from_file(path: str) -> list:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read the key file {path}: {error}") from None
    return _parsed(text, f"the key file {path}")


def keys_from_server(server: str, *, insecure: bool = False) -> list:
    """The keys `server` publishes; raises `InsecureKeys` when they would come over plain HTTP
    from another host (the address, or any redirect), unless `insecure`."""
    url = server.rstrip("/") + "/api/v1/keys"
    if not insecure and plain_http_elsewhere(url):
        raise InsecureKeys(
            f"refusing the keys at {url}: plain http:// to another host, where anyone on the "
            "path could swap them and make a forged proof verify. Use https://, save the keys "
            "to a file for --key, or pass --insecure-keys to accept the risk"
        )
    try:
        response = requests.get(
            url, timeout=TIMEOUT, headers={"User-Agent": f"quorum-cli/{__version__}"}
        )
    except requests.exceptions.InvalidURL as error:
        raise CliError(f"invalid Quorum URL {server!r}: {error}") from None
    except requests.exceptions.MissingSchema:
        raise CliError(f"invalid Quorum URL {server!r}: it needs http:// or https://") from None
    except requests.RequestException as error:
        raise CliError(f"cannot reach Quorum at {url}: {type(error).__name__}") from None
    hops = [hop.url for hop in response.history] + [response.url]
    if insecure:
        if any(plain_http_elsewhere(hop) for hop in hops):
            print(
                f"quorum: warning: --insecure-keys: trusting keys fetched over plain http:// "
                f"from {url}",
                file=sys.stderr,
                flush=True,
            )
    elif insecure_hop := next((hop for hop in hops if plain_http_elsewhere(hop)), None):
        raise InsecureKeys(
            f"refusing the keys at {url}: it redirected to {insecure_hop}, plain http:// to "
            "another host, where anyone on the path could swap them. Use the final https:// "
            "address, save the keys to a file for --key, or pass --insecure-keys to accept the "
            "risk"
        )
    if response.status_code != 200:
        raise CliError(f"Quorum answered {response.status_code} at {url}: no keys to check with")
    return _parsed(response.text, f"the keys at {url}")


def plain_http_elsewhere(url: str) -> bool:
    """Whether `url` is plain http:// to a host other than this machine (localhost or a
    loopback address such as 127.0.0.1 and ::1)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name, which any resolver on the way may answer


def _parsed(text: str, where: str) -> list:
    try:
        keys = proof.keys_from_text(text)
    except proof.AttestationError as error:
        raise CliError(f"{where}: {error}") from None
    if not keys:
        raise CliError(f"{where} holds no Ed25519 public key")
    return keys


# -- MLflow ---------------------------------------------------------------------------------------


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


def read_version(tracking_uri: str, model: str, version: int) -> dict | None:
    """The model version as MLflow's REST API answers it; None when it does not exist.

    Authenticates as MLflow's own client does: MLFLOW_TRACKING_TOKEN (bearer), or
    MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic); MLFLOW_TRACKING_INSECURE_TLS
    and MLFLOW_TRACKING_SERVER_CERT_PATH as MLflow reads them.
    """
    url = tracking_uri.rstrip("/") + "/api/2.0/mlflow/model-versions/get"
    headers = {"User-Agent": f"quorum-cli/{__version__}", "Accept": "application/json"}
    auth = None
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (
            os.environ["MLFLOW_TRACKING_USERNAME"],
            os.environ.get("MLFLOW_TRACKING_PASSWORD", ""),
        )
    tls: bool | str = True
    if insecure_tls():
        tls = False
    elif cert := os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        tls = cert
    try:
        response = requests.get(
            url,
            params={"name": model, "version": str(version)},
            headers=headers,
            auth=auth,
            verify=tls,
            timeout=TIMEOUT,
        )
    except requests.exceptions.InvalidURL as error:
        raise CliError(f"invalid MLflow tracking URI {tracking_uri!r}: {error}") from None
    except requests.RequestException as error:
        raise CliError(f"cannot reach MLflow at {tracking_uri}: {type(error).__name__}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CliError(
            f"MLflow at {tracking_uri} answered {response.status_code} without JSON: is it the "
            "tracking server's address?"
        )
    if response.status_code == 404 or body.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
        return None
    if response.status_code >= 400:
        detail = body.get("message") or body.get("error_code") or response.reason
        raise CliError(f"MLflow at {tracking_uri} refused ({response.status_code}): {detail}")
    found = body.get("model_version")
    if not isinstance(found, dict):
        raise CliError(f"MLflow at {tracking_uri} answered without a model version")
    return found
