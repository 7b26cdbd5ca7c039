"""The Content-Security-Policy (quorum/settings.py), and what it must allow for plotly.js's styles.

plotly.js styles its charts by creating an empty <style> element and filling it through the CSSOM,
which the policy does not govern, and bundles MapLibre, which adds its stylesheet as a <style>
element with fixed text when the bundle loads. The policy allows exactly those two, by the SHA-256
of their text (the empty string; MapLibre's, read from the plotly.js that is served, so an upgrade
brings its own), rather than allowing inline styles.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import plotly
from csp.constants import NONE, SELF

# esbuild's CSS injection in the bundle: `var e=document.createElement("style");e.id="<hash>",
# e.textContent='<css>'`, the text in either kind of quotes.
INJECTED_STYLE = re.compile(
    r"""document\.createElement\("style"\);\w+\.id="[^"]*",\w+\.textContent=(['"])"""
    r"""((?:(?!\1)[^\\]|\\.)*)\1"""
)
JS_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def source_hash(text: str) -> str:
    """A CSP source expression allowing exactly `text` as an inline element's content."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode('utf-8')).digest()).decode()}'"


def _unescape(literal: str) -> str:
    def one(match: re.Match) -> str:
        escape = match.group(1)
        if escape[0] in "ux" and len(escape) > 1:
            return chr(int(escape[1:], 16))
        return SIMPLE_ESCAPES.get(escape, escape)

    return JS_ESCAPE.sub(one, literal)


def plotly_style_hashes(bundle: Path) -> list[str]:
    """The empty <style> plotly.js fills through the CSSOM, and each stylesheet the bundle
    injects as text, as CSP hashes."""
    text = bundle.read_text(encoding="utf-8")
    hashes = [source_hash("")]
    start = text.find('document.createElement("style")')
    while start != -1:
        if match := INJECTED_STYLE.match(text, start):
            hashes.append(source_hash(_unescape(match.group(2))))
        start = text.find('document.createElement("style")', start + 1)
    return hashes


def content_security_policy() -> dict:
    """django-csp's CONTENT_SECURITY_POLICY: everything from this origin, and no inline code.

    Pages pass data to their scripts with json_script; scripts and styles are static files
    (plotly.js, the admin's, the API docs' Swagger UI). Images may be data: URIs (the admin's and
    Swagger UI's icons). The only inline styles are plotly.js's own, by hash, and those of
    django_rq's dashboard, on its pages alone (quorum/urls.py)."""
    served = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return {
        "DIRECTIVES": {
            "default-src": [SELF],
            "script-src": [SELF],
            "style-src": [SELF, *plotly_style_hashes(served)],
            "img-src": [SELF, "data:"],
            "font-src": [SELF],
            "connect-src": [SELF],
            "object-src": [NONE],
            "base-uri": [NONE],
            "form-action": [SELF],
            "frame-ancestors": [NONE],
        },
    }
