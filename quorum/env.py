"""Settings read from environment variables, refused with the variable's name when they do not
parse: a typo must stop startup, not quietly mean the default."""

from __future__ import annotations

import ipaddress
import os

from django.core.exceptions import ImproperlyConfigured

TRUE_VALUES = ("1", "true", "yes", "on")
FALSE_VALUES = ("0", "false", "no", "off")


def env_bool(name: str, default: bool) -> bool:
    """A boolean setting: one of TRUE_VALUES or FALSE_VALUES, in any case; unset or empty, the
    default. Anything else stops startup with the setting's name: `QUORUM_HTTPS=enable` must not
    quietly mean off and take HTTPS redirects and HSTS with it."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ImproperlyConfigured(
        f"{name}={os.environ[name]!r} is not a boolean: use {', '.join(TRUE_VALUES)} to turn it "
        f"on or {', '.join(FALSE_VALUES)} to turn it off (any case), or leave it unset for the "
        f"default ({'on' if default else 'off'})."
    )


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A list of CIDRs (a bare address is a network of one); a typo stops startup."""
    networks = []
    for item in env_list(name, ""):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an address or a network (CIDR such as 10.0.0.0/8)"
            ) from None
    return networks


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (any case); unset or empty, the first. Anything else stops startup."""
    value = os.environ.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ImproperlyConfigured(
            f"{name}={os.environ[name]!r}: use {choices[0]} (the default) or "
            + " or ".join(choices[1:])
        )
    return value


def env_secret(name: str, *, min_length: int) -> str:
    """A secret that must resist guessing: unset or empty (off), or at least `min_length` long."""
    value = os.environ.get(name, "")
    if value and len(value) < min_length:
        raise ImproperlyConfigured(
            f"{name} is too short to resist guessing: use {min_length} characters or more, e.g. "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return value
