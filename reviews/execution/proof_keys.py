"""The keys approval proofs are signed with, and those they may be verified with.

The current key (QUORUM_SIGNING_KEY, or one generated under var/) signs; its public key and
QUORUM_PREVIOUS_PUBLIC_KEYS (retired keys, whose proofs must still verify) are published at
/api/v1/keys and shown in the admin, each with its id. The proofs themselves are
`reviews.execution.attestation`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings
from securesystemslib.signer import CryptoSigner, SSlibKey

from infra.signing_key import ensure_generated_key
from quorum_cli import attestation as proof

from ..errors import QuorumError


class SigningKeyError(QuorumError):
    """QUORUM_SIGNING_KEY (or QUORUM_PREVIOUS_PUBLIC_KEYS) cannot be used."""

    code = "signing_key_unusable"
    status = 503


def signer() -> CryptoSigner:
    """The current signing key: QUORUM_SIGNING_KEY, or the generated one under var/."""
    value = settings.QUORUM_SIGNING_KEY.strip()
    if not value:
        return _signer_from_file(str(ensure_generated_key(Path(settings.QUORUM_SIGNING_KEY_FILE))))
    if value.startswith("-----BEGIN"):
        return _signer_from_pem(value.replace("\\n", "\n"), "QUORUM_SIGNING_KEY")
    return _signer_from_file(value)


def _signer_from_file(path: str) -> CryptoSigner:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise SigningKeyError(
            f"QUORUM_SIGNING_KEY names the file {path}, which cannot be read: {error.strerror}."
        ) from None
    return _signer_from_pem(text, f"the signing key file {path}")


@functools.lru_cache(maxsize=8)
def _signer_from_pem(pem: str, where: str) -> CryptoSigner:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise SigningKeyError(
            f"{where} is not an unencrypted PEM private key ({error}). Make one with: "
            "openssl genpkey -algorithm ed25519 -out quorum-signing-key.pem"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"{where} is a {type(key).__name__.removeprefix('_')}; Quorum signs with Ed25519: "
            "openssl genpkey -algorithm ed25519 -out quorum-signing-key.pem"
        )
    return CryptoSigner(key)


def previous_keys() -> list[SSlibKey]:
    """QUORUM_PREVIOUS_PUBLIC_KEYS: PEM public keys, or the path of a file holding them."""
    value = settings.QUORUM_PREVIOUS_PUBLIC_KEYS.strip()
    if not value:
        return []
    if "-----BEGIN" in value:
        text, where = value.replace("\\n", "\n"), "QUORUM_PREVIOUS_PUBLIC_KEYS"
    else:
        try:
            text, where = Path(value).read_text(), value
        except OSError as error:
            raise SigningKeyError(
                f"QUORUM_PREVIOUS_PUBLIC_KEYS names the file {value}, which cannot be read: "
                f"{error.strerror}."
            ) from None
    try:
        keys = proof.keys_from_pem(text)
    except proof.AttestationError as error:
        raise SigningKeyError(f"{where}: {error}") from None
    if not keys:
        raise SigningKeyError(f"{where} holds no PEM public key (-----BEGIN PUBLIC KEY-----).")
    return keys


@dataclass(frozen=True)
class PublishedKey:
    keyid: str
    status: str  # "current": signs new proofs; "previous": retired, its proofs still verify
    public_key_pem: str

    def as_json(self) -> dict:
        return {
            "keyid": self.keyid,
            "keytype": "ed25519",
            "scheme": "ed25519",
            "status": self.status,
            "public_key_pem": self.public_key_pem,
        }


def published_keys() -> list[PublishedKey]:
    """The keys a proof may be verified with: the current one first, then retired ones."""
    current = signer().public_key
    keys = [PublishedKey(current.keyid, "current", proof.public_key_pem(current))]
    for key in previous_keys():
        if key.keyid not in {k.keyid for k in keys}:
            keys.append(PublishedKey(key.keyid, "previous", proof.public_key_pem(key)))
    return keys


def verifying_keys() -> list[SSlibKey]:
    """The public keys a proof may verify with: the current one, then retired ones; [] when they
    cannot be read (a page then says its proofs are unchecked instead of failing)."""
    try:
        return [signer().public_key, *previous_keys()]
    except SigningKeyError:
        return []
