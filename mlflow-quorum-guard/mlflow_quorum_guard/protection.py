"""Which stages and aliases of a registered model are protected, read from the model's own tag.

Quorum writes the tag `quorum.protected` on every registered model one of its policies covers:
a JSON object `{"targets": ["Production", "@champion"], "request_url": "https://...",
"version_url": "https://.../versions/{version}/"}` where a target is a stage name or `@alias`, and
`version_url` (optional) is a version's own page in Quorum, where its promotion is requested: a
refusal about one version names that page rather than the model's. Keeping the list in MLflow's
own store means the guard keeps working while Quorum is down. Tags whose key starts with
`quorum.` may only be written by Quorum's service identity, so nobody else can unprotect a model
by editing its tag.

A model without the tag (registered, but not yet seen by Quorum) gets the guard's default targets,
so the moment between registering a model and Quorum tagging it is covered. A tag that cannot be
read protects every stage a version can be moved into and every alias: the guard fails closed.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

PROTECTED_TAG = "quorum.protected"
RESERVED_TAG_PREFIX = "quorum."
# The stages a version can be moved into; "None" is where every new version starts, so protecting
# it would make registering versions impossible.
MOVABLE_STAGES = ("Staging", "Production", "Archived")


class TargetError(ValueError):
    """A target that is neither a stage nor an @alias."""


def split_targets(targets: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(stages, aliases), both lower-cased: MLflow matches stage names without regard to case."""
    stages, aliases = set(), set()
    for raw in targets:
        target = str(raw).strip()
        if not target:
            continue
        if target.startswith("@") and len(target) > 1:
            aliases.add(target[1:].lower())
        elif target.lower() in {s.lower() for s in MOVABLE_STAGES}:
            stages.add(target.lower())
        else:
            raise TargetError(
                f"{target!r} is not a stage ({', '.join(MOVABLE_STAGES)}) or an @alias"
            )
    return frozenset(stages), frozenset(aliases)


@dataclass(frozen=True)
class Protection:
    """The protected targets of one registered model and where a promotion can be requested."""

    stages: frozenset[str]
    aliases: frozenset[str]
    request_url: str
    every_alias: bool = False  # fail closed on an unreadable tag
    source: str = "tag"  # "tag", "default" (no tag yet) or "unreadable tag"
    version_url: str = ""  # with "{version}" where the version's number goes

    def page_for(self, version: object = None) -> str:
        """Where to request a promotion: the version's own page when the tag says where that
        is and the version is known, else the model's."""
        if self.version_url and version not in (None, ""):
            return self.version_url.replace("{version}", urllib.parse.quote(str(version), safe=""))
        return self.request_url

    def covers_stage(self, stage: str | None) -> bool:
        return stage is not None and stage.lower() in self.stages

    def covers_alias(self, alias: str | None) -> bool:
        return bool(alias) and (self.every_alias or str(alias).lower() in self.aliases)

    def held_targets(self, *, stages: Iterable[str], aliases: Iterable[str]) -> list[str]:
        """The protected targets among the stages and aliases something currently holds."""
        held = [s for s in stages if self.covers_stage(s)]
        held += [f"@{a}" for a in aliases if self.covers_alias(a)]
        return sorted(set(held))


def protection_of(
    tags: dict[str, str], *, default_targets: Iterable[str], default_request_url: str
) -> Protection:
    """The protection a model's tags ask for (see the module docstring for the rules)."""
    raw = tags.get(PROTECTED_TAG)
    if raw is None:
        stages, aliases = split_targets(default_targets)
        return Protection(stages, aliases, default_request_url, source="default")
    try:
        document = json.loads(raw)
        stages, aliases = split_targets(_string_list(document["targets"]))
        url = document.get("request_url") or default_request_url
        if not isinstance(url, str):
            raise TypeError("request_url is not a string")
        version_url = document.get("version_url") or ""
        if not isinstance(version_url, str) or (version_url and "{version}" not in version_url):
            version_url = ""  # only where to send people: never a reason to fail closed
    except (ValueError, KeyError, TypeError, AttributeError):
        every_stage = frozenset(s.lower() for s in MOVABLE_STAGES)
        return Protection(
            every_stage, frozenset(), default_request_url, every_alias=True, source="unreadable tag"
        )
    return Protection(stages, aliases, url, version_url=version_url)


def _string_list(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("targets is not a list of strings")
    return value


def is_reserved_tag(key: str | None) -> bool:
    return key is not None and key.lower().startswith(RESERVED_TAG_PREFIX)
