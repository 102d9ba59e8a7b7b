"""The viewer page as served: viewer/index.html as built, with what only the service knows written in
once: /config.json in its `<meta name="viewer-config">` (a copy hosted elsewhere fetches it), the stream's
title and description, and preloads of the playlist and of the modules the player waits for."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PAGE = "index.html"
_CONFIG_META = '<meta name="viewer-config" content="">'
# The page's own words, as viewer/src/index.html has them: replaced by the settings' when they are set.
DEFAULT_TITLE = "Live stream"
_TITLE = f"<title>{DEFAULT_TITLE}</title>"
_HEADING = f'<h1 id="title">{DEFAULT_TITLE}</h1>'
_DESCRIPTION = '<p id="description" class="description" hidden></p>'
# Modules viewer.js imports before its player starts when config.json has the key.
PRELOAD_WHEN = {"p2p": "p2p.min.js"}
# A file the built page names by version: src="x?v=<16 hex digits>" or href="x?v=...".
_VERSIONED = re.compile(r"""\b(?:src|href)=(["'])([A-Za-z0-9][A-Za-z0-9_.-]{0,199})\?v=([0-9a-f]{16})\1""")
# A file a built module imports by version (viewer/src/build.mjs): import("./x?v=<16 hex digits>").
_IMPORTED = re.compile(r"""\bimport\(\s*(["'])\./([A-Za-z0-9][A-Za-z0-9_.-]{0,199})\?v=([0-9a-f]{16})\1""")


@dataclass(frozen=True)
class Words:
    """The stream's title and description as the page shows them ("": the page's own)."""

    title: str = ""
    description: str = ""


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
        # A private stream's page asks for the playlist with its token: a preload would be refused.
        self.playlist = src if isinstance(src, str) and not parsed.get("private") else ""
        self.preload = tuple(PRELOAD_WHEN[key] for key in sorted(parsed.keys() & PRELOAD_WHEN.keys()))


def versions_named(text: str, module: bool = False) -> dict[str, str]:
    """The files the page names by version, or those a built `module` imports: {name: version}."""
    return {m.group(2): m.group(3) for m in (_IMPORTED if module else _VERSIONED).finditer(text)}


def render(text: str, config: Config, words: Words, modules: Sequence[tuple[str, str]]) -> str:
    """The page: config.json in its meta, the stream's words, the preloads (`modules`: (name, version))."""
    if config.body:
        # Attribute-escaped JSON: data, never run (the page's policy allows no inline script).
        meta = f'<meta name="viewer-config" content="{html.escape(config.body.decode(), quote=True)}">'
        text = text.replace(_CONFIG_META, meta, 1)
    if words.title:
        title = html.escape(words.title, quote=False)
        text = text.replace(_TITLE, f"<title>{title}</title>", 1)
        text = text.replace(_HEADING, f'<h1 id="title">{title}</h1>', 1)
    if words.description:
        text = text.replace(_DESCRIPTION, '<p id="description" class="description">'
                            f"{html.escape(words.description, quote=False)}</p>", 1)
    links = "".join(f'  <link rel="modulepreload" href="{name}?v={version}">\n' for name, version in modules)
    if config.playlist:
        # crossorigin: hls.js asks in CORS mode, and a preload serves only a request of its own mode.
        href = html.escape(config.playlist)
        links += f'  <link rel="preload" href="{href}" as="fetch" crossorigin="anonymous">\n'
    return text.replace("</head>", links + "</head>", 1) if links else text


def stale(named: Mapping[str, str], versions: Mapping[str, str]) -> list[str]:
    """The files named at a version they do not have (scripts/build-viewer was not run)."""
    return sorted(name for name, version in named.items() if versions.get(name) != version)
