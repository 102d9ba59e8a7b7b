"""The multivariant playlists with their pathways (playlist/master.py's Steering): what the server
answers at /live/master.m3u8 and /hls/stream.m3u8 while content steering is on.

Each is rendered once per change of Owncast's variants, of the variant file name and of the pathway a
player starts on (the policy's first: a viewer who arrives while the bucket fails starts on the VM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..playlist import hls
from ..playlist.master import Pathway, Steering, VariantStream, render_master
from ..playlist.rendered import Rendered


class Announced(Protocol):
    """What the publisher shows (publish/visible.py's VisiblePlaylists is one)."""

    @property
    def announced(self) -> Sequence[VariantStream] | None: ...

    def media_playlist(self, variant: int) -> Rendered | None: ...


class SteeredMasters:
    """master_playlist(media_name): the multivariant playlist on every pathway of `pathways`."""

    def __init__(self, shown: Announced, pathways: Sequence[Pathway], first: Callable[[], str]) -> None:
        self._shown = shown
        self._pathways = tuple(pathways)
        self._first = first
        self._variants: Sequence[VariantStream] | None = None
        self._rendered: dict[tuple[str, str], Rendered] = {}

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        shown = self._shown
        variants = shown.announced
        if variants is not self._variants:
            self._variants = variants
            self._rendered.clear()
        first = self._first()
        rendered = self._rendered.get((media_name, first))
        if rendered is None:
            if not variants or any(shown.media_playlist(v.index) is None for v in variants):
                return None  # a player must find every variant it is offered
            rendered = render_master(variants, media_name, Steering(self._pathways, first))
            self._rendered[(media_name, first)] = rendered
        return rendered
