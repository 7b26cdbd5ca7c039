"""An OpenID Connect issuer as Quorum sees it: its discovery document and its signing keys.

Both are fetched over HTTP and cached per issuer: the document for an hour, the keys by
PyJWT's `PyJWKClient`, which fetches them again when a token names a key id it has not seen (the
provider rotated its keys). Every failure is a `ProviderError` whose message names the issuer.
"""

from __future__ import annotations

import threading
import time

import jwt
import requests
from django.conf import settings

DISCOVERY_TTL_SECONDS = 3600
# Keys are re-read at most this often unless a token names an unknown key id...
KEYS_TTL_SECONDS = 300
# ...and then at most this often: tokens with made-up key ids must not make Quorum hammer the
# issuer. Providers publish a new key before they sign with it, so a real rotation never waits.
UNKNOWN_KEY_REFETCH_SECONDS = 30
# Asymmetric algorithms only: a token signed with a shared secret ("HS256") or none is refused.
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]

_lock = threading.Lock()
_documents: dict[str, tuple[float, dict]] = {}
_key_clients: dict[str, jwt.PyJWKClient] = {}


class ProviderError(Exception):
    """The issuer could not be asked, or answered something unusable."""


def discovery(issuer: str) -> dict:
    """The issuer's `/.well-known/openid-configuration`, checked to name the issuer itself."""
    now = time.monotonic()
    with _lock:
        cached = _documents.get(issuer)
    if cached and now - cached[0] < DISCOVERY_TTL_SECONDS:
        return cached[1]
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ProviderError(f"cannot read the discovery document {url}: {error}") from None
    if not isinstance(document, dict) or document.get("issuer", "").rstrip("/") != issuer:
        raise ProviderError(f"the discovery document at {url} is for another issuer")
    with _lock:
        _documents[issuer] = (now, document)
    return document


def endpoint(issuer: str, name: str) -> str:
    value = discovery(issuer).get(name)
    if not value:
        raise ProviderError(f"the issuer {issuer} publishes no {name}")
    return value


def signing_key(token: str, issuer: str, jwks_uri: str | None = None) -> jwt.PyJWK:
    """The issuer's published key that `token` names (its `kid`), fetched and cached."""
    uri = jwks_uri or endpoint(issuer, "jwks_uri")
    with _lock:
        client = _key_clients.get(uri)
        if client is None:
            client = jwt.PyJWKClient(
                uri,
                cache_keys=True,
                lifespan=KEYS_TTL_SECONDS,
                timeout=settings.OIDC_TIMEOUT,
                cooldown_duration=UNKNOWN_KEY_REFETCH_SECONDS,
            )
            _key_clients[uri] = client
    try:
        return client.get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError as error:
        raise ProviderError(f"cannot read the keys of {issuer}: {error}") from None


def forget(issuer: str | None = None) -> None:
    """Drops cached documents and keys (all, or one issuer's): for tests and key incidents."""
    with _lock:
        if issuer is None:
            _documents.clear()
            _key_clients.clear()
        else:
            _documents.pop(issuer, None)
