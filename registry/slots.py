"""Places on the registry's pages that other apps fill, so that `registry` never loads them.

The review app puts its out-of-band banner, its "Request promotion" card and a model's request
history there (from its `AppConfig.ready`). A slot renders the templates put in it with the
page's context, in the order they were put; with none, it renders nothing, and the registry's
pages render on their own.
"""

from __future__ import annotations

# What each slot is for; a page names its slots with `{% slot "name" %}` (registry_extras).
SLOTS = {
    "model_banner": "the model page, under its title",
    "model_history": "the model page, under its holders chart: who held each target when",
    "model_footer": "the model page, under its versions",
    "version_banner": "the version page, under its title",
}

_filled: dict[str, list[str]] = {name: [] for name in SLOTS}


def fill(slot: str, template_name: str) -> None:
    """Renders `template_name` in `slot` from now on (once, however often it is put there)."""
    if slot not in SLOTS:
        raise ValueError(f"The registry's pages have no slot {slot!r}: {', '.join(SLOTS)}.")
    if template_name not in _filled[slot]:
        _filled[slot].append(template_name)


def templates(slot: str) -> list[str]:
    """The templates put in `slot`, in order."""
    return list(_filled[slot])
