"""Names that can pass for other names: invisible characters and look-alike letters.

A registered model's name comes from MLflow, and anyone who can register a model chooses it.
"fraud\u200b-model" (with a zero-width space) or "frаud-model" (with a Cyrillic "а") looks
exactly like "fraud-model" on a page, and a bidi control such as U+202E can make a name read
backwards. Wherever Quorum shows a model name it goes through here (the `model_name` and
`model_name_text` template filters), so such a name never looks like another one:

- every invisible, format, control or private-use character is replaced by a visible marker
  naming its code point (`⟨U+200B⟩`), which also stops bidi controls from reordering the text;
- a name that mixes scripts with letters that look alike (Latin with Cyrillic or Greek, say) is
  flagged; which letters are confusable, and the script of each character, come from the
  `confusable_homoglyphs` package (Unicode's confusables and script data).

The HTML form marks the name and explains it in a tooltip; the text form (mail, subjects) spells
the markers out. The name itself is never changed: links and lookups use it as MLflow has it.

People's names go through the same checks: the admin marks a username as it marks a model name,
and a sign-in through the identity provider compares the name it brings with the existing ones by
`skeleton` (identity/membership.py), so "аlice" cannot become a second "alice".
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from confusable_homoglyphs import categories, confusables
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# Characters that draw nothing or change how the text around them is drawn: controls, formats
# (zero-width characters, bidi controls), surrogates, private use, unassigned, line and
# paragraph separators.
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# Letters and marks that are blank by design (Unicode's default-ignorable code points outside the
# categories above), and spaces other than the plain one.
BLANK = {
    "\u115f",  # HANGUL CHOSEONG FILLER
    "\u1160",  # HANGUL JUNGSEONG FILLER
    "\u3164",  # HANGUL FILLER
    "\uffa0",  # HALFWIDTH HANGUL FILLER
    "\u2800",  # BRAILLE PATTERN BLANK
    "\u034f",  # COMBINING GRAPHEME JOINER
    "\u17b4",  # KHMER VOWEL INHERENT AQ
    "\u17b5",  # KHMER VOWEL INHERENT AA
}
VARIATION_SELECTORS = [(0x180B, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF)]


def _invisible(char: str) -> bool:
    if char == " ":
        return False
    category = unicodedata.category(char)
    if category in INVISIBLE_CATEGORIES or category == "Zs" or char in BLANK:
        return True
    point = ord(char)
    return any(low <= point <= high for low, high in VARIATION_SELECTORS)


def code_point(char: str) -> str:
    return f"U+{ord(char):04X}"


def char_name(char: str) -> str:
    return unicodedata.name(char, "") or f"{unicodedata.category(char)} character"


@dataclass(frozen=True)
class NameCheck:
    """What makes a name deceptive: its invisible characters (in order, repeats once) and, when
    it mixes scripts with look-alike letters, those scripts."""

    name: str
    invisible: tuple[str, ...]
    scripts: tuple[str, ...]

    @property
    def suspicious(self) -> bool:
        return bool(self.invisible or self.scripts)

    def explanation(self, of: str = "model") -> str:
        """A sentence for a tooltip or a mail; `of` says whose name it is ("model", "person")."""
        parts = []
        if self.invisible:
            listed = ", ".join(f"{code_point(c)} {char_name(c)}" for c in self.invisible)
            parts.append(
                f"This name contains invisible or control characters ({listed}), shown as "
                "⟨U+…⟩ markers"
            )
        if self.scripts:
            parts.append(
                f"{'It' if parts else 'This name'} mixes {' and '.join(self.scripts)} letters "
                "that look alike"
            )
        return "; ".join(parts) + f": another {of}'s name may look the same."


@lru_cache(maxsize=4096)
def check(name: str) -> NameCheck:
    """What, if anything, makes `name` look like another name."""
    if name.isascii() and name.isprintable():
        return NameCheck(name, (), ())
    invisible = tuple(dict.fromkeys(c for c in name if _invisible(c)))
    visible = "".join(c for c in name if c not in invisible)
    return NameCheck(name, invisible, _lookalike_scripts(visible))


def _lookalike_scripts(text: str) -> tuple[str, ...]:
    """The scripts a name mixes when a letter of a minority script looks like one of the main
    script's ("frаud" with a Cyrillic "а"); () for names in one script, or whose scripts do not
    look alike ("Straße-模型")."""
    counts = Counter(
        categories.alias(char) for char in text if unicodedata.category(char).startswith("L")
    )
    counts.pop("COMMON", None)
    if len(counts) < 2:
        return ()
    main = counts.most_common(1)[0][0]
    found = confusables.is_confusable(text, greedy=True, preferred_aliases=[main.lower()]) or []
    others = {entry["alias"] for entry in found} - {"COMMON", "INHERITED", main}
    if not others:
        return ()
    return tuple(script.title() for script in sorted({main, *others}))


def _pieces(check_: NameCheck) -> list[tuple[str, bool]]:
    """The name as (text, is_marker) runs."""
    pieces: list[tuple[str, bool]] = []
    for char in check_.name:
        if char in check_.invisible:
            pieces.append((f"⟨{code_point(char)}⟩", True))
        elif pieces and not pieces[-1][1]:
            pieces[-1] = (pieces[-1][0] + char, False)
        else:
            pieces.append((char, False))
    return pieces


def as_text(name: str) -> str:
    """The name for plain text (mail, subjects, page titles): markers for invisible characters,
    and a warning after a name that mixes look-alike scripts."""
    found = check(name)
    if not found.suspicious:
        return name
    text = "".join(piece for piece, _ in _pieces(found))
    if found.scripts:
        text += f" (⚠ mixes {' and '.join(found.scripts)} letters)"
    return text


def as_html(name: str, *, of: str = "model") -> SafeString:
    """The name for a page, escaped; a suspicious one marked, with the reason in its tooltip
    (`of`: whose name it is, for the tooltip)."""
    found = check(name)
    if not found.suspicious:
        return format_html("{}", name)
    body = format_html_join(
        "",
        "{}",
        (
            (format_html('<mark class="name-char">{}</mark>', piece) if marker else piece,)
            for piece, marker in _pieces(found)
        ),
    )
    return format_html(
        '<span class="name-suspicious" title="{}">{}<span class="name-flag" aria-hidden="true">'
        ' ⚠</span><span class="visually-hidden"> ({})</span></span>',
        found.explanation(of),
        body,
        found.explanation(of),
    )


def normalized(name: str) -> str:
    """A name as it is compared and stored where case must not make two names: NFKC (the
    compatibility forms such as "ａ" become "a"), then case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def skeleton(name: str) -> str:
    """What `name` looks like, as a string two look-alike names share: `normalized`, without
    invisible characters, each letter replaced by one representative of the letters that look
    like it ("аlice" with a Cyrillic "а" and "alice" have one skeleton; "alice" and "alicia" do
    not). After Unicode's skeleton (UTS #39), from the confusables that `check` reads."""
    prototypes = _prototypes()
    return "".join(prototypes.get(char, char) for char in normalized(name) if not _invisible(char))


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, str]:
    """Each character that looks like another → the smallest code point of all the characters
    it looks like, directly or through others (so a Latin letter where the set has one)."""
    parent: dict[str, str] = {}

    def root(char: str) -> str:
        while parent.get(char, char) != char:
            parent[char] = parent.get(parent[char], parent[char])
            char = parent[char]
        return char

    for char, entries in confusables.confusables_data.items():
        if len(char) != 1:
            continue
        for entry in entries:
            glyph = entry["c"]
            if len(glyph) == 1:
                a, b = root(char), root(glyph)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {char: root(char) for char in list(parent)}
