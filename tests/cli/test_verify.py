"""`quorum verify` end to end: a real `mlflow server`, a transition carried out by the real job,
the CLI as a subprocess with nothing but MLflow's address and Quorum's public key, as a deploy
step runs it (quorum_cli/verify.py)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner

from quorum.localservices import free_port
from quorum_cli import attestation as proof
from reviews.execution import attestation, proof_keys
from tests.processes import quorum_verify as verify

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def test_verify_exits_0_for_a_version_promoted_through_quorum(
    executed, mlflow_server, key_file, tmp_path, client, live_server
):
    result = verify(executed, "3", "--target", "Production", "--key", str(key_file),
                    tracking_uri=mlflow_server.url)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"verified: {executed} version 3 was approved for Production by ")
    assert "lead (ml-leads), scientist1 (data-science), scientist2 (data-science)" in line
    assert "under policy 'production'" in line

    # The key list saved from /api/v1/keys works offline just as well.
    saved = tmp_path / "keys.json"
    saved.write_text(client.get("/api/v1/keys").content.decode())
    result = verify(executed, "3", "--target", "Production", "--key", str(saved), "--json",
                    tracking_uri=mlflow_server.url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)  # --json: stdout is the result alone
    assert outcome["verified"] is True and outcome["content"]["matches"] is True
    assert outcome["statement"]["predicate"]["model"]["version"] == 3
    assert result.stderr.startswith("verified: ")

    # Or fetched from Quorum itself (QUORUM_URL stands in for --server).
    result = verify(executed, "3", "--target", "Production", tracking_uri=mlflow_server.url,
                    QUORUM_URL=live_server.url)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_verify_exits_1_for_a_tampered_proof(executed, mlflow_server, mlflow_client, key_file):
    tag = proof.tag_for("Production")
    envelope = json.loads(mlflow_client.get_version(executed, 3).tags[tag])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["approvers"].append({"user": "mallory", "group": "ml-leads"})
    envelope["payload"] = base64.b64encode(proof.canonical_json(statement)).decode()
    mlflow_client.set_version_tag(executed, 3, tag, json.dumps(envelope))

    result = verify(executed, "3", "--target", "Production", "--key", str(key_file),
                    tracking_uri=mlflow_server.url)  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"quorum: NOT VERIFIED: {executed} version 3 → Production: the signature does not "
        "verify: the proof was altered or forged"
    )


def test_verify_exits_1_for_a_version_moved_to_the_target_without_quorum(
    executed, mlflow_server, mlflow_client, key_file
):
    mlflow_client.transition_stage(executed, 2, "Production")  # straight in MLflow

    result = verify(executed, "2", "--target", "Production", "--key", str(key_file),
                    tracking_uri=mlflow_server.url)  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"NOT VERIFIED: {executed} version 2 has no approval proof for Production (no tag "
        "quorum.attestation.Production): it was not promoted there through Quorum"
    ) in result.stderr


def test_verify_exits_1_for_a_proof_signed_by_another_key(
    executed, mlflow_server, mlflow_client, tmp_path
):
    stranger = CryptoSigner(Ed25519PrivateKey.generate()).public_key
    other_key = tmp_path / "other.pem"
    other_key.write_text(proof.public_key_pem(stranger))

    result = verify(executed, "3", "--target", "Production", "--key", str(other_key),
                    tracking_uri=mlflow_server.url)  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert "signed by an unknown key" in result.stderr

    # A proof someone signed with their own key, checked with Quorum's.
    forged = attestation.signed(
        attestation.statement_of(attestation.TransitionRequest.objects.get()),
        CryptoSigner(Ed25519PrivateKey.generate()),
    )
    mlflow_client.set_version_tag(executed, 2, proof.tag_for("Production"), forged)
    quorum_key = tmp_path / "quorum.pem"
    quorum_key.write_text(proof.public_key_pem(proof_keys.signer().public_key))
    result = verify(executed, "2", "--target", "Production", "--key", str(quorum_key),
                    tracking_uri=mlflow_server.url)  # fmt: skip
    assert result.returncode == 1 and "signed by an unknown key" in result.stderr


def test_verify_exits_1_for_another_target_another_version_or_no_version(
    executed, mlflow_server, mlflow_client, key_file
):
    def run(version: str, target: str) -> subprocess.CompletedProcess:
        return verify(executed, version, "--target", target, "--key", str(key_file),
                      tracking_uri=mlflow_server.url)  # fmt: skip

    wrong_target = run("3", "Staging")
    assert wrong_target.returncode == 1
    assert "no approval proof for Staging" in wrong_target.stderr
    assert "it has proofs for Production only" in wrong_target.stderr
    assert run("3", "@champion").returncode == 1

    # Version 3's valid proof copied onto version 2: signed, but for another version.
    tag = proof.tag_for("Production")
    mlflow_client.set_version_tag(
        executed, 2, tag, mlflow_client.get_version(executed, 3).tags[tag]
    )
    copied = run("2", "Production")
    assert copied.returncode == 1
    assert "the proof is for version 3, not version 2" in copied.stderr

    missing = run("99", "Production")
    assert missing.returncode == 1
    assert f"NOT VERIFIED: {executed} version 99 is not registered in MLflow" in missing.stderr


def test_verify_exits_2_on_usage_and_connection_errors(mlflow_server, key_file, tmp_path):
    key = ["--key", str(key_file)]
    cases = [
        (["m", "1", *key], mlflow_server.url, {}, "the following arguments are required: --target"),
        (["m", "one", "--target", "Production", *key], mlflow_server.url, {}, "whole number"),
        (["m", "1", "--target", "production", *key], mlflow_server.url, {}, "is not a target"),
        (["m", "1", "--target", "Production"], mlflow_server.url, {}, "no public key"),
        (["m", "1", "--target", "Production", *key], None, {}, "no MLflow"),
        (["m", "1", "--target", "Production", *key], "file:///tmp/mlruns", {}, "http://"),
        (
            ["m", "1", "--target", "Production", *key, "--server", "http://127.0.0.1:1"],
            mlflow_server.url,
            {},
            "not allowed with argument",
        ),
        (
            ["m", "1", "--target", "Production", "--key", str(tmp_path / "none.pem")],
            mlflow_server.url,
            {},
            "cannot read the key file",
        ),
        (
            ["m", "1", "--target", "Production", *key],
            f"http://127.0.0.1:{free_port()}",
            {},
            "cannot reach MLflow at http://127.0.0.1:",
        ),
        (
            ["m", "1", "--target", "Production", "--server", f"http://127.0.0.1:{free_port()}"],
            mlflow_server.url,
            {},
            "cannot reach Quorum at http://127.0.0.1:",
        ),
        (
            ["m", "1", "--target", "Production", *key],
            mlflow_server.url,
            {"MLFLOW_TRACKING_INSECURE_TLS": "yes"},
            "MLFLOW_TRACKING_INSECURE_TLS='yes' is not a boolean: use true or 1",
        ),
    ]
    for args, tracking_uri, env, message in cases:
        result = verify(*args, tracking_uri=tracking_uri, **env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()[-1]) < 300


# -- keys fetched over plain HTTP --------------------------------------------------------------


def this_hosts_address() -> str:
    """An address of this machine that is not loopback (what another host would reach)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # picks the outgoing interface; sends nothing
            address = probe.getsockname()[0]
    except OSError:
        address = ""
    if not address or address.startswith("127."):
        pytest.skip("this machine has no address but loopback")
    return address


def serve(host: str, keys: bytes, redirect_to: str = "") -> Iterator[str]:
    """A plain HTTP server on `host` answering /api/v1/keys with `keys`, or redirecting every
    request to `redirect_to`; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            if redirect_to:
                self.send_response(302)
                self.send_header("Location", redirect_to + self.path)
                self.end_headers()
                return
            self.send_response(200 if self.path == "/api/v1/keys" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(keys)

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def published_keys(client) -> bytes:
    """The keys Quorum publishes at /api/v1/keys."""
    return client.get("/api/v1/keys").content


@pytest.fixture
def plain_http_keys(published_keys) -> Iterator[str]:
    """Quorum's keys served over plain HTTP at an address of this machine that is not loopback,
    as a key server on another host would be."""
    yield from serve(this_hosts_address(), published_keys)


@pytest.fixture
def loopback_redirecting_to(plain_http_keys) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 that redirects to `plain_http_keys`."""
    yield from serve("127.0.0.1", b"", redirect_to=plain_http_keys)


def test_verify_refuses_keys_over_plain_http_from_another_host_with_exit_4(
    executed, mlflow_server, plain_http_keys
):
    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return verify(executed, "3", "--target", "Production", *args,
                      tracking_uri=mlflow_server.url, **env)  # fmt: skip

    for refused in (
        run("--server", plain_http_keys),
        run(QUORUM_URL=plain_http_keys),
        run("--server", "http://quorum.example.com"),  # refused before any lookup
    ):
        assert refused.returncode == 4, refused.stdout + refused.stderr
        assert refused.stdout == ""
        (line,) = refused.stderr.splitlines()
        assert line.startswith("quorum: refusing the keys at http://")
        assert "plain http:// to another host" in line and "--insecure-keys" in line

    accepted = run("--server", plain_http_keys, "--insecure-keys")

    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.startswith(f"verified: {executed} version 3 was approved")
    assert accepted.stderr == (
        "quorum: warning: --insecure-keys: trusting keys fetched over plain http:// from "
        f"{plain_http_keys}/api/v1/keys\n"
    )


def test_verify_refuses_keys_a_local_server_redirects_to_plain_http_elsewhere(
    executed, mlflow_server, loopback_redirecting_to, plain_http_keys
):
    result = verify(executed, "3", "--target", "Production", "--server", loopback_redirecting_to,
                    tracking_uri=mlflow_server.url)  # fmt: skip

    assert result.returncode == 4, result.stdout + result.stderr
    assert f"it redirected to {plain_http_keys}/api/v1/keys, plain http://" in result.stderr
