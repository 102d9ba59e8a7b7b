"""A private stream's kept VOD playlists as the gated route answers them (http/vod_route.py): a media
playlist's relative segment URIs made absolute by a URL maker of its own, rendered off the event loop
once a window (not once a viewer), so every viewer of a window gets the same bytes. A multivariant
playlist is answered as kept.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..bucket.urls import SegmentUrls
from ..playlist.rendered import gzipped

log = logging.getLogger(__name__)

_MAP = '#EXT-X-MAP:URI="'
_RENDERINGS_KEPT = 256  # playlists asked in one window (each clip's few); past it they are made again


class Kept(Protocol):
    version: int

    def read(self, relative: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A kept playlist as answered: its bytes, and a media playlist's gzipped too (once a window)."""

    body: bytes
    gzipped: bytes | None = None


class ServedVod:
    def __init__(self, kept: Kept, urls: SegmentUrls, key_prefix: str, window: Callable[[], object]) -> None:
        """`window()`: a value that changes whenever `urls` would give another URL for the same key."""
        self._kept = kept
        self._urls = urls
        self._prefix = f"{key_prefix}/" if key_prefix else ""
        self._window = window
        self._made: dict[str, asyncio.Future[Answer | None]] = {}
        self._made_for: tuple[object, int] | None = None

    async def playlist(self, relative: str, *, media: bool) -> Answer | None:
        """The kept playlist at `relative` (below PREFIX) as a viewer gets it; None when none is kept."""
        made_for = (self._window(), self._kept.version)
        if made_for != self._made_for:
            self._made.clear()
            self._made_for = made_for
        made = self._made.get(relative)
        if made is None:
            if len(self._made) >= _RENDERINGS_KEPT:
                self._made.clear()
            made = self._made[relative] = asyncio.ensure_future(asyncio.to_thread(self._render, relative, media))
        return await asyncio.shield(made)  # a viewer hanging up leaves the rendering to the others

    def _render(self, relative: str, media: bool) -> Answer | None:
        body = self._kept.read(relative)
        if body is None or not media:
            return None if body is None else Answer(body)
        try:
            body = signed(body, self._prefix + relative, self._urls)
        except ValueError as err:  # not UTF-8: damaged on disk
            log.warning("kept playlist %s cannot be read (%s): answered as missing", relative, err)
            return None
        return Answer(body, gzipped(body))  # the same bytes for every viewer


def signed(body: bytes, key: str, urls: SegmentUrls) -> bytes:
    """A VOD media playlist kept at `key`, each relative segment and init section URI replaced by its URL."""
    folder = posixpath.dirname(key)
    lines = []
    for line in body.decode().split("\n"):
        if line and not line.startswith("#"):
            line = urls.segment(posixpath.normpath(posixpath.join(folder, line)))
        elif line.startswith(_MAP):
            uri, quote, rest = line[len(_MAP):].partition('"')
            line = f"{_MAP}{urls.init(posixpath.normpath(posixpath.join(folder, uri)))}{quote}{rest}"
        lines.append(line)
    return "\n".join(lines).encode()
