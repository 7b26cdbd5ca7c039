"""The demo's signing key for approval proofs: one Ed25519 key generated under var/ on first use.

Apart from Django so that `python -m quorum.demo` can make it before anything starts; production
sets QUORUM_SIGNING_KEY instead (reviews/execution/proof_keys.py, docs/deploy.md).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

logger = logging.getLogger(__name__)


def ensure_generated_key(path: Path) -> Path:
    """Creates an Ed25519 private key (PEM, readable by its owner only) at `path` unless one is
    there; returns `path`.

    Written to a temporary file and linked into place, so two processes starting at once (the
    web app and a worker) end up with one key, and neither reads a half-written file.
    """
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        try:
            os.link(temporary, path)
            logger.info("generated the signing key %s", path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        os.unlink(temporary)
    return path
