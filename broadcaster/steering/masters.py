"""The multivariant playlists with their pathways, while content steering is on: rendered once per change
of variants, file name, first pathway and the place it was asked at. URIs are absolute there (Shaka's ban
filter compares hosts; GStreamer resolves `//host/...` wrongly), relative past MAX_HOSTS places.
Answered only once every variant has a playlist on the pathway players start on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from ..playlist import hls
from ..playlist.master import Pathway, Steering, VariantStream, render_master
from ..playlist.rendered import Rendered


class Listed(Protocol):
    """A pathway's media playlists (publish/visible.py's VisiblePlaylists)."""

    @property
    def announced(self) -> Sequence[VariantStream] | None: ...

    def last_sequence(self, variant: int) -> int | None: ...


MAX_HOSTS = 16  # places (scheme, host, folder) rendered for at once (a hostile client may name many)


class SteeredMasters:
    """The multivariant playlist with its pathways and steering manifest under `here` (a base URL)."""

    def __init__(self, pathways: Sequence[Pathway], first: Callable[[], str],
                 playlists: Mapping[str, Listed]) -> None:
        self._playlists = dict(playlists)
        self._pathways = tuple(pathways)
        self._first = first
        self._variants: Sequence[VariantStream] | None = None
        self._rendered: dict[tuple[str, str, str], Rendered] = {}
        self._hosts: dict[str, tuple[Pathway, ...]] = {}

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME, here: str | None = None) -> Rendered | None:
        variants = self._playlists[hls.BUCKET_PATHWAY].announced
        if variants is not self._variants:
            self._variants = variants
            self._rendered.clear()
        first = self._first()
        base = here if here is not None and (here in self._hosts or len(self._hosts) < MAX_HOSTS) else ""
        key = (media_name, first, base)
        rendered = self._rendered.get(key)
        if rendered is None:
            start = self._playlists.get(first)
            if not variants or start is None or any(start.last_sequence(v.index) is None for v in variants):
                return None  # a player must find every variant it is offered where it starts
            pathways = self._hosts.get(base)
            if pathways is None:
                pathways = self._hosts[base] = tuple(
                    replace(p, folder=base + p.folder) if base and "//" not in p.folder else p
                    for p in self._pathways)
            server_uri = base + hls.STEERING_MANIFEST_NAME  # relative without a base, as the variants
            rendered = render_master(variants, media_name, Steering(pathways, first, server_uri))
            self._rendered[key] = rendered
        return rendered
