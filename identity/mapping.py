"""How the provider's groups become Quorum's: the rules in QUORUM_OIDC_GROUP_MAP and
QUORUM_OIDC_STAFF_GROUPS, read from settings each time (tests and reloads change them).

A rule is `pattern=quorum-group`; the pattern is an exact provider group name, a glob (`ds-*`)
or a regular expression after `re:` (matched whole). The Quorum groups the rules name are
*managed by the provider*: their members are set at each sign-in, and the admin and the policy
loader refuse to edit them. This module imports nothing from the apps, so the policy loader and
the admin can ask it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class GroupRule:
    pattern: str
    group: str

    def matches(self, provider_group: str) -> bool:
        if self.pattern.startswith("re:"):
            return re.fullmatch(self.pattern[3:], provider_group) is not None
        return fnmatchcase(provider_group, self.pattern)


def parse_rules(text: str, *, setting: str = "QUORUM_OIDC_GROUP_MAP") -> list[GroupRule]:
    """`"a=x, ds-*=y"` → rules; a malformed entry is a configuration error naming it."""
    rules = []
    for entry in (item.strip() for item in text.split(",")):
        if not entry:
            continue
        pattern, sep, group = (part.strip() for part in entry.rpartition("="))
        if not sep or not pattern or not group:
            raise ImproperlyConfigured(f"{setting}: {entry!r} is not 'provider-group=quorum-group'")
        if pattern.startswith("re:"):
            try:
                re.compile(pattern[3:])
            except re.error as error:
                raise ImproperlyConfigured(f"{setting}: {pattern!r}: {error}") from None
        rules.append(GroupRule(pattern, group))
    return rules


def group_rules() -> list[GroupRule]:
    return parse_rules(settings.QUORUM_OIDC_GROUP_MAP)


def staff_patterns() -> list[GroupRule]:
    """QUORUM_OIDC_STAFF_GROUPS, a comma-separated list of patterns, as rules."""
    text = settings.QUORUM_OIDC_STAFF_GROUPS
    return [GroupRule(p.strip(), "staff") for p in text.split(",") if p.strip()]


def provider_configured() -> bool:
    return bool(settings.OIDC_ISSUER)


def managed_group_names() -> set[str]:
    """The Quorum groups whose members come from the provider (none without a provider)."""
    if not provider_configured():
        return set()
    return {rule.group for rule in group_rules()}


def quorum_groups_for(provider_groups: Iterable[str]) -> set[str]:
    rules = group_rules()
    return {rule.group for name in provider_groups for rule in rules if rule.matches(name)}


def staff_for(provider_groups: Iterable[str]) -> bool | None:
    """Whether the provider makes this person staff; None when no rule says (leave the flag)."""
    patterns = staff_patterns()
    if not patterns:
        return None
    return any(rule.matches(name) for name in provider_groups for rule in patterns)


def managed_message(group: str) -> str:
    return (
        f"Group {group!r} is managed by the identity provider (QUORUM_OIDC_GROUP_MAP): its "
        "members are set from each person's groups when they sign in. Change the membership "
        "at the provider."
    )
