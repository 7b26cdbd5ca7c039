"""The signed approval proof Quorum writes on a promoted model version, and how it is checked.

One format, shared by the signer (Quorum's transition worker, `reviews/execution/attestation.py`)
and the verifier (`quorum verify`): this module imports neither Django nor MLflow, so a deployment
pipeline can check a proof with `requests`, `cryptography` and `securesystemslib` alone.

The proof is an in-toto Statement (v1) in a DSSE envelope (securesystemslib's `Envelope`), signed
with an Ed25519 key, stored as a model version tag whose name says the target it was approved
for (`tag_for`), so a version approved for Staging and then for Production keeps both proofs.
A key is known by its id: the SHA-256 of its canonical JSON form (securesystemslib's default), so
the id follows from the key itself and cannot be chosen.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from securesystemslib import exceptions as ssl_errors
from securesystemslib.dsse import Envelope
from securesystemslib.signer import Key, SSlibKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:quorum:approval:v1"
TAG_PREFIX = "quorum.attestation."
# MLflow (>= 3.2) takes model version tag values of up to 100,000 characters, and MySQL keeps
# at most 65,535 bytes of them: a proof stays far below both.
MAX_TAG_BYTES = 32 * 1024

PEM_PUBLIC_KEY = re.compile(
    r"-----BEGIN PUBLIC KEY-----\s+[A-Za-z0-9+/=\s]+?-----END PUBLIC KEY-----"
)
STAGES = ("None", "Staging", "Production", "Archived")
ALIAS = re.compile(r"@[\w\-]+")


class AttestationError(Exception):
    """A proof that does not hold: missing, malformed, forged, or for something else."""


def tag_for(target: str) -> str:
    """The version tag holding the proof for `target`: `quorum.attestation.Production`,
    `quorum.attestation.alias.champion` (MLflow tag names cannot hold `@`)."""
    if target in STAGES:
        return TAG_PREFIX + target
    if ALIAS.fullmatch(target):
        return f"{TAG_PREFIX}alias.{target[1:]}"
    raise ValueError(
        f"{target!r} is not a target: use Staging, Production, Archived, None or an @alias"
    )


def target_of_tag(tag: str) -> str | None:
    """The target a proof tag is for, or None for a tag that is not one."""
    if not tag.startswith(TAG_PREFIX):
        return None
    rest = tag[len(TAG_PREFIX) :]
    if rest.startswith("alias."):
        return "@" + rest[len("alias.") :]
    return rest if rest in STAGES else None


def subject_name(model: str, version: int) -> str:
    return f"models:/{model}/{version}"


def subject_digest(*, model: str, version: int, run_id: str, source: str) -> str:
    """What the Statement's subject digest covers: the version as MLflow registered it (its
    name, number, run and source URI), not the artifact's bytes, which Quorum never reads."""
    identity = {"model": model, "version": version, "run_id": run_id, "source": source}
    return hashlib.sha256(canonical_json(identity)).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


# -- keys -----------------------------------------------------------------------------------------


def public_key(key: object) -> SSlibKey:
    """The key as securesystemslib verifies with it; its id is computed from the key. Any other
    kind of key (RSA, EC, a private key) is refused by name."""
    if not isinstance(key, Ed25519PublicKey):
        raise AttestationError(f"not an Ed25519 public key ({type(key).__name__})")
    return SSlibKey.from_crypto(key)


def public_key_pem(key: SSlibKey) -> str:
    crypto_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.keyval["public"]))
    return crypto_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def keys_from_pem(text: str) -> list[SSlibKey]:
    """Every `-----BEGIN PUBLIC KEY-----` block of `text` (a file may hold several)."""
    keys = []
    for block in PEM_PUBLIC_KEY.findall(text):
        try:
            loaded = load_pem_public_key(block.encode())
        except ValueError as error:
            raise AttestationError(f"a public key block could not be read: {error}") from None
        keys.append(public_key(loaded))
    return keys


def keys_from_text(text: str) -> list[SSlibKey]:
    """Keys from PEM public keys, or from the JSON Quorum publishes at /api/v1/keys (each key's
    `public_key_pem` is read, and its id recomputed rather than trusted)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
            blocks = [entry["public_key_pem"] for entry in document["keys"]]
        except (ValueError, KeyError, TypeError) as error:
            raise AttestationError(
                f"not a key list like Quorum's /api/v1/keys ({type(error).__name__}: {error})"
            ) from None
        return keys_from_pem("\n".join(str(block) for block in blocks))
    if "PRIVATE KEY-----" in text:
        raise AttestationError(
            "this is a private key: give its public key instead "
            "(openssl pkey -in KEY.pem -pubout -out public.pem)"
        )
    return keys_from_pem(text)


# -- the envelope ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    statement: dict
    keyid: str

    @property
    def predicate(self) -> dict:
        return self.statement["predicate"]


def envelope_of(tag_value: str) -> Envelope:
    """The DSSE envelope a tag holds; AttestationError when it is not one."""
    try:
        document = json.loads(tag_value)
        if not isinstance(document, dict):
            raise TypeError("the tag is not a JSON object")
        if not isinstance(document.get("signatures"), list) or not document["signatures"]:
            raise TypeError("the envelope has no signatures")
        return Envelope.from_dict(document)
    except (ValueError, KeyError, TypeError, AttributeError, ssl_errors.FormatError) as error:
        raise AttestationError(f"the tag is not a DSSE envelope ({error})") from None


def verify_envelope(tag_value: str, keys: list[SSlibKey]) -> Verified:
    """The Statement inside `tag_value`, once a signature by one of `keys` verifies over it.

    Raises AttestationError naming the reason: malformed, signed by no key given (an unknown or
    retired-and-unpublished key), a signature that does not verify (the payload was changed), or
    not a Quorum approval Statement.
    """
    envelope = envelope_of(tag_value)
    if envelope.payload_type != PAYLOAD_TYPE:
        raise AttestationError(f"the envelope's payload type is {envelope.payload_type!r}")
    known = {key.keyid for key in keys}
    if not known.intersection(envelope.signatures):
        ids = ", ".join(short(keyid) for keyid in envelope.signatures)
        raise AttestationError(f"signed by an unknown key ({ids}), not by any trusted key")
    trusted: list[Key] = list(keys)
    try:
        accepted = envelope.verify(trusted, 1)
    except ssl_errors.VerificationError:
        raise AttestationError(
            "the signature does not verify: the proof was altered or forged"
        ) from None
    try:
        statement = json.loads(envelope.payload)
    except ValueError:
        raise AttestationError("the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise AttestationError("the signed payload is not an in-toto Statement v1")
    if statement.get("predicateType") != PREDICATE_TYPE or not isinstance(
        statement.get("predicate"), dict
    ):
        raise AttestationError(f"the Statement is not a Quorum approval ({PREDICATE_TYPE})")
    return Verified(statement=statement, keyid=next(iter(accepted)))


def check_names(verified: Verified, *, model: str, version: int, target: str) -> None:
    """Raises AttestationError unless the signed Statement is for exactly this model, version
    and target (a proof copied to another version's tag, or to another target's, fails here)."""
    predicate = verified.predicate
    names = predicate.get("model") or {}
    if names.get("name") != model:
        raise AttestationError(f"the proof is for model {names.get('name')!r}, not {model!r}")
    if names.get("version") != version:
        raise AttestationError(
            f"the proof is for version {names.get('version')}, not version {version}"
        )
    if predicate.get("target") != target:
        raise AttestationError(f"the proof is for {predicate.get('target')}, not {target}")
    subjects = verified.statement.get("subject") or []
    if not any(
        isinstance(s, dict) and s.get("name") == subject_name(model, version) for s in subjects
    ):
        raise AttestationError(f"the Statement's subject is not {subject_name(model, version)}")


def check_registration(verified: Verified, *, run_id: str, source: str) -> None:
    """Raises AttestationError unless the Statement's subject digest matches the version as
    MLflow has it now (its run and source)."""
    predicate = verified.predicate
    names = predicate["model"]
    expected = subject_digest(
        model=names["name"], version=names["version"], run_id=run_id, source=source
    )
    digests = [
        (s.get("digest") or {}).get("sha256")
        for s in verified.statement["subject"]
        if isinstance(s, dict) and isinstance(s.get("digest") or {}, dict)
    ]
    if expected not in digests:
        raise AttestationError(
            "the proof was made for another registration of this version (its run or source "
            "differs from MLflow's)"
        )


def short(keyid: str) -> str:
    return keyid[:16]
