"""The signed approval proof Quorum writes on a promoted model version, and how it is checked.

One format, shared by the signer (Quorum's transition worker, `reviews/execution/attestation.py`)
and the verifier (`quorum verify`): this module imports neither Django nor MLflow, so a deployment
pipeline can check a proof with `requests`, `cryptography` and `securesystemslib` alone.

The proof is an in-toto Statement (v1) in a DSSE envelope (securesystemslib's `Envelope`), signed
with an Ed25519 key, whose subject is the model's content digest (`quorum_cli.manifest`) and
whose predicate is `PREDICATE_TYPE`; a proof whose holding ended is replaced by a revocation
(`REVOCATION_TYPE`) saying when and why. It is stored as a model version tag whose name says the
target it was approved for (`tag_for`), so a version approved for Staging and then for
Production keeps both proofs.
A key is known by its id: the SHA-256 of its canonical JSON form (securesystemslib's default), so
the id follows from the key itself and cannot be chosen.
"""

from __future__ import annotations

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
# v2: the subject is the model's content digest (`quorum_cli.manifest`), no longer a digest of
# its registration; the request's kind and, for break glass, its ratification are signed too.
PREDICATE_TYPE = "urn:quorum:approval:v2"
# The first format, whose subject named the version, not its bytes: refused, to be signed again.
OLD_PREDICATE_TYPES = ("urn:quorum:approval:v1",)
# What replaces a proof once its version leaves the target (`reviews.execution.revocation`).
REVOCATION_TYPE = "urn:quorum:revocation:v1"
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

    @property
    def revoked(self) -> bool:
        """Whether this is a revocation: the version left the target after it was approved."""
        return self.statement.get("predicateType") == REVOCATION_TYPE

    @property
    def content_digest(self) -> str | None:
        """The content digest the Statement's subject names (sha256 over the manifest)."""
        for subject in self.statement.get("subject") or []:
            digest = subject.get("digest") if isinstance(subject, dict) else None
            if isinstance(digest, dict) and isinstance(digest.get("sha256"), str):
                return digest["sha256"]
        return None


def envelope_of(tag_value: str) -> Envelope:
    """The DSSE envelope a tag holds; AttestationError when it is not one."""
    try:
        document = json.loads(tag_value)
        if not isinstance(document, dict):
            raise TypeError("the tag is not a JSON object")
        if not isinstance(document.get("signatures"), list) or not document["signatures"]:
            raise TypeError("the envelope has no signatures")
        return Envelope.from_dict(document)
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        ssl_errors.FormatError,
        # json's answer to deep nesting: anyone who may write a tag can write that.
        RecursionError,
    ) as error:
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
    kind = statement.get("predicateType")
    if kind in OLD_PREDICATE_TYPES:
        request = ((statement.get("predicate") or {}).get("request") or {}).get("id")
        command = (
            f"manage.py write_attestation {request}"
            if isinstance(request, int)
            else ("manage.py write_attestation ID")
        )
        raise AttestationError(
            f"the proof is in the old format ({kind}), which names the version, not its bytes: "
            f"have Quorum sign it again ({command})"
        )
    if kind not in (PREDICATE_TYPE, REVOCATION_TYPE) or not isinstance(
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
    """Raises AttestationError unless the signed Statement names the version's run and source
    as MLflow has them now (a version registered again under the same number fails here)."""
    names = verified.predicate["model"]
    if names.get("run_id") != run_id or names.get("source") != source:
        raise AttestationError(
            "the proof was made for another registration of this version (its run or source "
            "differs from MLflow's)"
        )


def unratified(verified: Verified) -> bool:
    """Whether the proof is of a break-glass move the quorum has not ratified (yet)."""
    predicate = verified.predicate
    kind = (predicate.get("request") or {}).get("kind")
    return kind == "break_glass" and not (predicate.get("break_glass") or {}).get("ratified")


def revocation_sentence(verified: Verified) -> str:
    """Why a revoked proof no longer holds, in words: "left Production at 2026-12-06 02:10 UTC:
    rolled back in #12"."""
    predicate = verified.predicate
    when = str(predicate.get("left_at") or "an unknown time")
    return f"left {predicate.get('target')} at {when}: {predicate.get('reason') or 'no reason'}"


def short(keyid: str) -> str:
    return keyid[:16]
