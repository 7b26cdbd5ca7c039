"""GET /keys: the public keys that verify the approval proofs on promoted versions."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from quorum_cli import attestation as proof

from ..execution import proof_keys
from .schemas import Error, KeysOut

router = Router()


@router.get("/keys", auth=None, response={200: KeysOut, 503: Error}, tags=["attestations"])
def list_keys(request: HttpRequest):
    """The public keys that verify the approval proofs on promoted versions. Public: no token.

    Save the answer as a file for `quorum verify --key FILE`, or let `quorum verify --server URL`
    fetch it."""
    return {
        "keys": [key.as_json() for key in proof_keys.published_keys()],
        "payload_type": proof.PAYLOAD_TYPE,
        "predicate_type": proof.PREDICATE_TYPE,
        "tag_prefix": proof.TAG_PREFIX,
    }
