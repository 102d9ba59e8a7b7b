"""The viewer page as served (viewer/index.html rewritten in memory, once per change): its files named
by their versioned URLs, and what it needs to start with it or asked for beside it (issue 42):

- /config.json's content in its `<meta name="viewer-config">` (viewer.js reads it there; a page hosted
  elsewhere, with that meta left empty, fetches config.json);
- `<link rel="preload">` of the playlist config.json names, so it comes beside the page's scripts instead
  of after them (hls.js's request for it takes the preloaded answer);
- `<link rel="modulepreload">` of the modules the page's module imports when they are not combined into
  it, and of those config.json turns on before the player starts (PRELOAD_WHEN: P2P's engine), so none
  waits for the one importing it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence

PAGE = "index.html"
# What the page refers to its own files by: src="x" or href="x", a plain name (not a URL, not data:).
_REFERENCE = re.compile(r"""\b(src|href)=(["'])([A-Za-z0-9][A-Za-z0-9_.-]{0,199})\2""")
# The page's module scripts (<script type="module" src="viewer.js">): the roots of its module graph.
_MODULE_SCRIPT = re.compile(
    r"""<script\b(?=[^>]*\btype=["']module["'])[^>]*\bsrc=(["'])([A-Za-z0-9][A-Za-z0-9_.-]{0,199})\1""")
_CONFIG_META = '<meta name="viewer-config" content="">'
# Modules viewer.js imports before its player starts when config.json has the key: the page asks for
# them beside its own files (P2P: the player waits for its engine, p2p.js and what it imports).
PRELOAD_WHEN = {"p2p": "p2p.js"}


def referenced(text: str) -> list[str]:
    """The page's own files it names (src="x", href="x"), each once."""
    return [name for name in dict.fromkeys(m.group(3) for m in _REFERENCE.finditer(text)) if name != PAGE]


def module_entries(text: str) -> tuple[str, ...]:
    """The files of its `<script type="module">`s."""
    return tuple(dict.fromkeys(m.group(2) for m in _MODULE_SCRIPT.finditer(text)))


class Config:
    """/config.json's content, as the page is given it."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        parsed = parsed if isinstance(parsed, dict) else {}
        src = parsed.get("src")
        self.playlist = src if isinstance(src, str) else ""
        self.preload = tuple(PRELOAD_WHEN[key] for key in sorted(parsed.keys() & PRELOAD_WHEN.keys()))


def render(text: str, versions: Mapping[str, str], config: Config, modules: Sequence[tuple[str, str]]) -> str:
    """The page: each file it names at `name?v=<version>` (versions: those found), config.json in its
    meta, and the preloads (modules: (name, version) of each module to preload) before </head>."""

    def versioned(m: re.Match[str]) -> str:
        attribute, quote, name = m.groups()
        version = versions.get(name)
        return m.group(0) if version is None else f"{attribute}={quote}{name}?v={version}{quote}"

    text = _REFERENCE.sub(versioned, text)
    if config.body:
        # Attribute-escaped JSON: data, never run (the page's policy allows no inline script).
        meta = f'<meta name="viewer-config" content="{html.escape(config.body.decode(), quote=True)}">'
        text = text.replace(_CONFIG_META, meta, 1)
    links = "".join(f'  <link rel="modulepreload" href="{name}?v={version}">\n' for name, version in modules)
    if config.playlist:
        # crossorigin: hls.js asks in CORS mode (the bucket's master too), and a preload serves only a
        # request of its own mode.
        href = html.escape(config.playlist)
        links += f'  <link rel="preload" href="{href}" as="fetch" crossorigin="anonymous">\n'
    return text.replace("</head>", links + "</head>", 1) if links else text
