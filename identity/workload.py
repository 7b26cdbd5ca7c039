"""CI without long-lived secrets: the API takes a workload identity token (a JWT such as GitHub
Actions' OIDC token) from an issuer configured in QUORUM_CI_ISSUERS, and acts as the service user
its claims map to, with that user's rights.

    [{"issuer": "https://token.actions.githubusercontent.com",
      "audience": "https://quorum.example.com",
      "users": [{"user": "ci-fraud",
                 "claims": {"repository": "acme/fraud", "environment": "production"}}]}]

The token's signature is checked against the issuer's published keys (discovery, or `jwks_uri`
in the entry), cached and re-read when the issuer rotates them; then its issuer, audience and
expiry. Rules are tried in order; each claim value is an exact string or a glob
(`"ref": "refs/tags/v*"`), and all of a rule's claims must match.

A rule must name its caller: pin one of CALLER_CLAIMS (the repository or project, or `sub`) to an
exact value. GitHub lets any workflow on GitHub ask for a token with any audience, so a rule that
pins no caller (no claims at all, only globs, only `environment` or `ref`) would let every
repository act as its service user. `manage.py check` refuses such a rule (identity.E004), and
it never matches a token, should the checks have been skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from . import tokens

# Claims that name who is calling: GitHub's repository and its id, GitLab's project path and id,
# and the subject, which both issuers build from them.
CALLER_CLAIMS = ("repository", "repository_id", "project_path", "project_id", "sub")
GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class ServiceRule:
    user: str
    claims: dict[str, str]

    @property
    def names_its_caller(self) -> bool:
        """Whether one of CALLER_CLAIMS is pinned to an exact, non-empty value."""
        return any(
            (value := self.claims.get(name)) and not any(c in value for c in GLOB_CHARACTERS)
            for name in CALLER_CLAIMS
        )

    def matches(self, claims: dict) -> bool:
        if not self.names_its_caller:
            return False  # any caller at all would match it: never trusted (identity.E004)
        return all(
            isinstance(claims.get(name), str) and fnmatchcase(claims[name], pattern)
            for name, pattern in self.claims.items()
        )


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    audience: str
    users: list[ServiceRule] = field(default_factory=list)
    jwks_uri: str | None = None


def trusted_issuers() -> dict[str, TrustedIssuer]:
    """QUORUM_CI_ISSUERS (JSON text, or a list in tests), by issuer; malformed: an error."""
    raw = settings.QUORUM_CI_ISSUERS
    if not raw:
        return {}
    try:
        entries = json.loads(raw) if isinstance(raw, str) else raw
        issuers = {}
        for entry in entries:
            rules = [
                ServiceRule(
                    user=str(rule["user"]), claims={k: str(v) for k, v in rule["claims"].items()}
                )
                for rule in entry.get("users", [])
            ]
            issuer = str(entry["issuer"]).rstrip("/")
            issuers[issuer] = TrustedIssuer(
                issuer=issuer,
                audience=str(entry["audience"]),
                users=rules,
                jwks_uri=entry.get("jwks_uri"),
            )
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ImproperlyConfigured(
            f"QUORUM_CI_ISSUERS must be a JSON list of {{issuer, audience, users: [{{user, "
            f"claims}}]}}: {error!r}"
        ) from None
    return issuers


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def user_for_workload_token(token: str):
    """The active service user a workload token maps to; raises `TokenRefused` with why not."""
    issuers = trusted_issuers()
    claimed = tokens.unverified_claim(token, "iss").rstrip("/")
    trusted = issuers.get(claimed)
    if trusted is None:
        known = ", ".join(sorted(issuers)) or "none (QUORUM_CI_ISSUERS is unset)"
        raise tokens.TokenRefused(
            f"The token's issuer {claimed!r} is not trusted; trusted issuers: {known}.",
            forged=True,
        )
    claims = tokens.verify(
        token, issuer=trusted.issuer, audience=trusted.audience, jwks_uri=trusted.jwks_uri
    )
    rule = next((rule for rule in trusted.users if rule.matches(claims)), None)
    if rule is None:
        shown = {name: claims.get(name) for r in trusted.users for name in r.claims}
        raise tokens.TokenRefused(
            f"No service user is configured for this token's claims {shown} from {trusted.issuer}."
        )
    user = get_user_model().objects.filter(username=rule.user).first()
    if user is None or not user.is_active:
        raise tokens.TokenRefused(
            f"The service user {rule.user!r} this token maps to does not exist or is deactivated."
        )
    return user
