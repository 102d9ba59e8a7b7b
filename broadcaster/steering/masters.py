"""The multivariant playlists with their pathways (playlist/master.py's Steering): what the server
answers at /live/master.m3u8 and /hls/stream.m3u8 while content steering is on.

Each is rendered once per change of Owncast's variants, of the variant file name, of the pathway a
player starts on (the policy's first) and of where it was asked (http/clients.py's request_here). Every
URI in it is absolute there: with a host, since Shaka 4.16's ban filter compares host names and a
relative URI's empty one matches every ban; with a scheme, since GStreamer's hlsdemux resolves a
network-path reference (`//host/...`) against the path (the player's own scheme only when a proxy in
front does not say). A shared cache must key on the host, as every CDN and deploy/nginx-cache.conf do.
Past MAX_HOSTS places (or a Host that is not a plain host) the URIs are relative.

It is answered once every variant has a playlist on the pathway players start on, so no player is told
of a variant that answers 503 before its first frame.
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
    def announced(self) -> Sequence[VariantStream] | None:
        """The variants Owncast announces (read of the first bucket's)."""

    def last_sequence(self, variant: int) -> int | None:
        """How far `variant`'s visible version lists (None: none), without rendering it."""


MAX_HOSTS = 16  # places (scheme, host, folder) rendered for at once (a hostile client may name many)


class SteeredMasters:
    """master_playlist(media_name, here): the multivariant playlist on every pathway of `pathways`, the
    ones served by the VM (relative: the bucket's and "vm") and the steering manifest named under `here`
    (`https://host/folder/`)."""

    def __init__(self, pathways: Sequence[Pathway], first: Callable[[], str],
                 playlists: Mapping[str, Listed]) -> None:
        """`playlists`: each pathway's, by ID, the first bucket's announcing the variants."""
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
