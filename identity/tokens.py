"""Checking a signed token from an issuer: signature against its published keys, issuer,
audience, expiry. One function for the ID tokens of people and the workload tokens of CI, so
both are refused for the same reasons with the same words.
"""

from __future__ import annotations

from datetime import UTC, datetime

import jwt

from .provider import SIGNING_ALGORITHMS, ProviderError, signing_key

# Clocks differ a little between the provider and Quorum.
LEEWAY_SECONDS = 30


class TokenRefused(Exception):
    """The token is not acceptable; the message says why, for the person or the CI log.

    `forged`: nobody the issuer knows made it (bad signature, unpublished key, untrusted
    issuer), as opposed to a real token that is expired or meant for someone else.
    """

    def __init__(self, message: str, *, forged: bool = False):
        super().__init__(message)
        self.forged = forged


def unverified_claim(token: str, name: str) -> str:
    try:
        value = jwt.decode(token, options={"verify_signature": False}).get(name, "")
    except jwt.PyJWTError:
        raise TokenRefused("The token is not a JWT (three base64url parts).") from None
    return value if isinstance(value, str) else ""


def verify(token: str, *, issuer: str, audience: str, jwks_uri: str | None = None) -> dict:
    """The token's claims, once its signature, issuer, audience and expiry all check out."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRefused("The token is not a JWT (three base64url parts).") from None
    algorithm = header.get("alg")
    if algorithm not in SIGNING_ALGORITHMS:
        raise TokenRefused(
            f"The token is signed with {algorithm!r}; only the issuer's published public keys "
            f"({', '.join(SIGNING_ALGORITHMS)}) are accepted."
        )
    try:
        key = signing_key(token, issuer, jwks_uri)
    except ProviderError as error:
        raise TokenRefused(str(error)) from None
    except jwt.PyJWKClientError:
        raise TokenRefused(
            f"The token is signed with key id {header.get('kid')!r}, which {issuer} does not "
            "publish.",
            forged=True,
        ) from None
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        # Only an `exp` that is a number can have expired, so this claim is one.
        expired = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        when = datetime.fromtimestamp(expired, UTC).isoformat(timespec="seconds")
        raise TokenRefused(f"The token expired at {when}; get a fresh one.") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused(
            f"The token's signature does not verify against the keys {issuer} publishes: "
            "it was not issued there.",
            forged=True,
        ) from None
    except jwt.InvalidAudienceError:
        got = jwt.decode(token, options={"verify_signature": False}).get("aud")
        raise TokenRefused(f"The token is for audience {got!r}, not {audience!r}.") from None
    except jwt.InvalidIssuerError:
        got = jwt.decode(token, options={"verify_signature": False}).get("iss")
        raise TokenRefused(f"The token was issued by {got!r}, not {issuer!r}.") from None
    except jwt.MissingRequiredClaimError as error:
        raise TokenRefused(f"The token has no {error.claim!r} claim.") from None
    except jwt.ImmatureSignatureError:
        raise TokenRefused("The token is not valid yet (nbf/iat in the future).") from None
    except jwt.PyJWTError as error:
        raise TokenRefused(f"The token is not valid: {error}.") from None
