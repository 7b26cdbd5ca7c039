"""Quorum's own tags in MLflow, read for the registry's pages: apart from the user's tags, in words.

Quorum writes three kinds of tag into MLflow: `quorum.protected` on a registered model (the
stages and aliases its policies protect, which the guard inside MLflow reads), `quorum.pinned` on
a version with an open request (the guard holds it still while it is reviewed), and
`quorum.attestation.<target>` on a version it moved (a signed approval proof,
`quorum_cli.attestation`). Shown as the JSON they hold they mean nothing to a reader; here each
says what it means: "Protected by Quorum: Production, @champion", "Held for review by Quorum:
request #12", "Signed proof for Production ✓ (subject sha256:ab12…)".

Anyone who may write tags in an MLflow without the guard can write these keys with any text, so a
value is parsed, never trusted: one that cannot be read says "unreadable Quorum tag" (pages
escape it like any MLflow text), and a proof counts as signed only once its signature verifies
with a key Quorum signs with, for this version and target. Those keys are the review app's: it
hands them over when Django starts (`set_proof_keys`), so this module never imports it. Reading
the tags costs no query.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from quorum_cli import attestation as proof

# The guard reads these two (mlflow_quorum_guard.protection.PROTECTED_TAG and
# mlflow_quorum_guard.holds.PINNED_TAG): the names must agree, and the guard's tests check it.
PROTECTED_TAG = "quorum.protected"
PINNED_TAG = "quorum.pinned"
UNREADABLE = "unreadable Quorum tag"
# Of an unreadable value, what a page quotes: enough to recognise it, never a whole proof.
QUOTED_CHARS = 120

KeySource = Callable[[], list[Any]]
_proof_keys: KeySource | None = None


def set_proof_keys(source: KeySource) -> None:
    """Called once by the app that signs the proofs: `source()` gives the public keys (current and
    retired) a proof may verify with, or [] when none can be read."""
    global _proof_keys
    _proof_keys = source


@dataclass(frozen=True)
class QuorumTag:
    """One of Quorum's tags as a page says it. `ok`: True for a proof that verifies, False for
    one that does not (and for an unreadable tag), None when there is nothing to check."""

    key: str
    words: str
    detail: str = ""
    ok: bool | None = None


@dataclass(frozen=True)
class Tags:
    """A model's or version's tags: the user's as (key, value) pairs, Quorum's in words."""

    user: list[tuple[str, str]]
    quorum: list[QuorumTag]


def model_tags(tags: Mapping[str, Any] | None) -> Tags:
    """A registered model's tags: `quorum.protected` said apart from the user's."""
    tags = tags or {}
    quorum = [_protected(tags[PROTECTED_TAG])] if PROTECTED_TAG in tags else []
    return Tags(user=_user(tags, {PROTECTED_TAG}), quorum=quorum)


def version_tags(tags: Mapping[str, Any] | None, *, model: str, version: int) -> Tags:
    """A model version's tags: `quorum.pinned` and every `quorum.attestation.*` proof said apart
    from the user's, each proof checked against this version."""
    tags = tags or {}
    ours = {key for key in tags if key == PINNED_TAG or key.startswith(proof.TAG_PREFIX)}
    quorum = [_pinned(tags[PINNED_TAG])] if PINNED_TAG in tags else []
    keys: list[Any] | None = None
    for key in sorted(ours - {PINNED_TAG}):
        if keys is None:  # read once, and only for a page that shows a proof
            keys = _proof_keys() if _proof_keys is not None else []
        quorum.append(_proof(key, tags[key], model=model, version=version, keys=keys))
    return Tags(user=_user(tags, ours), quorum=quorum)


def user_tags(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    """`tags` without Quorum's own: what a comparison of two versions sets side by side."""
    return {
        key: value
        for key, value in (tags or {}).items()
        if key not in (PROTECTED_TAG, PINNED_TAG) and not key.startswith(proof.TAG_PREFIX)
    }


def _user(tags: Mapping[str, Any], ours: set[str]) -> list[tuple[str, str]]:
    return sorted((key, value) for key, value in tags.items() if key not in ours)


def _unreadable(key: str, value: Any, why: str, words: str = UNREADABLE) -> QuorumTag:
    text = str(value)
    quoted = text if len(text) <= QUOTED_CHARS else text[:QUOTED_CHARS] + "…"
    return QuorumTag(key=key, words=words, detail=f"{why}: {quoted}", ok=False)


def _document(value: Any) -> Any:
    """The JSON a tag holds; ValueError when it holds none. Deep nesting is refused as malformed
    (json raises RecursionError on it, which must not reach a page)."""
    if not isinstance(value, str):
        raise ValueError("not text")
    try:
        return json.loads(value)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _protected(value: Any) -> QuorumTag:
    try:
        document = _document(value)
        targets = document.get("targets") if isinstance(document, dict) else None
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ValueError("no list of targets")
    except ValueError as error:
        # The guard fails closed on it (mlflow_quorum_guard.protection): every stage and alias.
        return _unreadable(
            PROTECTED_TAG,
            value,
            str(error),
            words=f"{UNREADABLE}: the guard protects every stage and alias",
        )
    if not targets:
        return QuorumTag(key=PROTECTED_TAG, words="Not protected by Quorum: no policy covers it")
    return QuorumTag(key=PROTECTED_TAG, words=f"Protected by Quorum: {', '.join(targets)}")


def _pinned(value: Any) -> QuorumTag:
    try:
        document = _document(value)
        requests = document.get("requests") if isinstance(document, dict) else None
        if not isinstance(requests, list) or not all(
            isinstance(r, int) and not isinstance(r, bool) for r in requests
        ):
            raise ValueError("no list of request numbers")
    except ValueError as error:
        return _unreadable(PINNED_TAG, value, str(error))
    numbers = ", ".join(f"#{r}" for r in requests)
    return QuorumTag(
        key=PINNED_TAG,
        words="Held for review by Quorum" + (f": request {numbers}" if numbers else ""),
    )


def _proof(key: str, value: Any, *, model: str, version: int, keys: list[Any]) -> QuorumTag:
    target = proof.target_of_tag(key)
    if target is None:
        return _unreadable(key, value, "not a stage or an alias")
    if not isinstance(value, str):
        return _unreadable(key, value, "not text")
    try:
        proof.envelope_of(value)
    except proof.AttestationError as error:
        return _unreadable(key, value, str(error))
    if not keys:
        return QuorumTag(
            key=key,
            words=f"Proof for {target}",
            detail="its signature is not checked here: no key of Quorum's could be read",
        )
    try:
        verified = proof.verify_envelope(value, keys)
        proof.check_names(verified, model=model, version=version, target=target)
    except proof.AttestationError as error:
        return QuorumTag(key=key, words=f"Proof for {target} ✗", detail=str(error), ok=False)
    subject = verified.content_digest
    said = f"subject sha256:{subject[:12]}…" if subject else "no content digest"
    if verified.revoked:
        return QuorumTag(
            key=key,
            words=f"Revoked proof for {target}",
            detail=proof.revocation_sentence(verified),
            ok=None,
        )
    if proof.unratified(verified):
        said += "; a break-glass move, not ratified when signed"
    return QuorumTag(key=key, words=f"Signed proof for {target} ✓", detail=f"({said})", ok=True)
