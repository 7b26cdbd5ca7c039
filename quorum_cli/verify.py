"""`quorum verify MODEL VERSION --target T`: did this version really go through Quorum?

Reads the version's proof tag from MLflow directly (its REST API, MLFLOW_TRACKING_URI,
`quorum_cli.mlflow_rest`), checks the DSSE signature against Quorum's public keys (a file, for
offline use, or fetched from a Quorum server), that the signed Statement names exactly this
model, version and target and the version's run and source as MLflow has them, that it was not
revoked (the version left the target) nor an unratified break glass (unless
`--allow-unratified`), and that the model's files are the approved bytes: their content digest,
computed again from MLflow's copy or from `--path DIR` (`quorum_cli.content_check`), is the
proof's subject. Exit codes: 0 verified; 1 not verified (the message says why); 2 usage or
connection errors; 4 keys that would come over plain HTTP from another host. Every outcome is
one line; `--json` prints the result, with the files that differ, on stdout as well.

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

from quorum_cli import __version__, content_check, mlflow_rest
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
        "--path",
        metavar="DIR",
        help="check the model files in DIR (the copy about to be served) instead of MLflow's",
    )
    verify.add_argument(
        "--allow-unratified",
        action="store_true",
        help="accept a break-glass move the quorum has not ratified yet",
    )
    verify.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout: verified, reason, the Statement and the "
        "content comparison with the files that differ",
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
    if args.path and not os.path.isdir(args.path):
        usage_error(f"--path {args.path!r} is not a directory")

    if args.key:
        keys = keys_from_file(args.key)
    elif server:
        keys = keys_from_server(server, insecure=args.insecure_keys)
    else:
        usage_error("no public key: pass --key FILE, or --server URL (or set QUORUM_URL)")
    outcome: dict = {"model": args.model, "version": version, "target": args.target}
    try:
        verified = checked(args, keys, version, tag, outcome)
    except NotVerified as refusal:
        if args.json:
            outcome.update(verified=False, reason=str(refusal).removeprefix("NOT VERIFIED: "))
            print(json.dumps(outcome, indent=2, sort_keys=True), flush=True)
        raise
    line = summary(verified, f"{args.model} version {version}", args.target)
    if args.json:
        outcome.update(verified=True, reason="")
        print(json.dumps(outcome, indent=2, sort_keys=True), flush=True)
    print(line, file=sys.stderr if args.json else sys.stdout)
    return EXIT_VERIFIED


def checked(
    args: argparse.Namespace, keys: list, version: int, tag: str, outcome: dict
) -> proof.Verified:
    """The verified Statement, once every check holds; `NotVerified` naming the first that does
    not. `outcome` collects what --json prints (the Statement, the content comparison)."""
    what = f"{args.model} version {version}"
    found = mlflow_rest.read_version(args.tracking_uri, args.model, version)
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
        outcome["statement"] = verified.statement
        proof.check_names(verified, model=args.model, version=version, target=args.target)
        if verified.revoked:
            raise proof.AttestationError(proof.revocation_sentence(verified))
        proof.check_registration(
            verified, run_id=found.get("run_id") or "", source=found.get("source") or ""
        )
        if proof.unratified(verified) and not args.allow_unratified:
            raise proof.AttestationError(
                "moved by break glass and not ratified by the quorum (yet): pass "
                "--allow-unratified to accept an emergency move"
            )
        result = content_check.check(verified, tracking_uri=args.tracking_uri, path=args.path)
    except proof.AttestationError as error:
        raise NotVerified(f"NOT VERIFIED: {what} → {args.target}: {error}") from None
    outcome["content"] = result.as_json()
    if not result.matches:
        raise NotVerified(f"NOT VERIFIED: {what} → {args.target}: {result.sentence()}")
    return verified


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
    emergency = " (break glass, NOT ratified yet)" if proof.unratified(verified) else ""
    return (
        f"verified: {what} was approved for {target} by {people} under policy {policy!r}"
        f"{emergency}, content sha256 {(verified.content_digest or '')[:12]}…, signed by key "
        f"{proof.short(verified.keyid)}; {url}"
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
