"""The multivariant playlists with their pathways (playlist/master.py's Steering): what the server
answers at /live/master.m3u8 and /hls/stream.m3u8 while content steering is on.

Each is rendered once per change of Owncast's variants, of the variant file name, of the pathway a
player starts on (the policy's first: a viewer who arrives while the bucket fails starts on the VM) and
of where it was asked (http/clients.py's request_here: the scheme and host the viewer used, and the
folder). Every URI in it is absolute there (`https://host/live/0/playlist.m3u8`,
`https://host/live/vm/0/playlist.m3u8`, the steering manifest's `https://host/live/steering.json`):
- a host: Shaka 4.16 drops every pathway whose URI has no host as soon as any host failed (for 60 s: its
  ban filter compares host names, and a relative URI's is empty, so it matches every ban), then stays on
  the pathway the multivariant playlist named first whatever the steering manifest says;
- a scheme: GStreamer's hlsdemux and hlsdemux2 (1.22) resolve a network-path reference (`//host/...`)
  against the path, `http://host//host/live/0/playlist.m3u8`, and play nothing.
The scheme is the player's own (`//host/...`) only when a proxy in front does not say which it used.
A shared cache in front must key on the host, as every CDN and deploy/nginx-cache.conf do. At most
MAX_HOSTS places are rendered for; past them (or with a Host that is not a plain host) the URIs are
relative.

It is answered once every variant has a playlist on the pathway players start on (the policy's first):
at a stream's start the VM lists a segment once it holds it, a bucket once its upload landed there, and a
player told of a variant the bucket did not list yet got its 503 (a retry, or a pathway switch, before
its first frame).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from ..playlist import hls
from ..playlist.master import Pathway, Steering, VariantStream, render_master
from ..playlist.rendered import Rendered


class Announced(Protocol):
    """What the publisher shows (publish/visible.py's VisiblePlaylists is one)."""

    @property
    def announced(self) -> Sequence[VariantStream] | None: ...

    def media_playlist(self, variant: int) -> Rendered | None: ...


class Listed(Protocol):
    """A pathway's media playlists (publish/visible.py's VisiblePlaylists)."""

    def last_sequence(self, variant: int) -> int | None:
        """How far `variant`'s visible version lists (None: none), without rendering it."""


MAX_HOSTS = 16  # places (scheme, host, folder) rendered for at once (a hostile client may name many)


class SteeredMasters:
    """master_playlist(media_name, here): the multivariant playlist on every pathway of `pathways`, the
    ones served by the VM (relative: the bucket's and "vm") and the steering manifest named under `here`
    (`https://host/folder/`)."""

    def __init__(self, shown: Announced, pathways: Sequence[Pathway], first: Callable[[], str],
                 playlists: Mapping[str, Listed]) -> None:
        """`shown`: what Owncast announces (the first bucket's playlists); `playlists`: each pathway's,
        by ID (a player must find every variant on the pathway it starts on)."""
        self._shown = shown
        self._playlists = dict(playlists)
        self._pathways = tuple(pathways)
        self._first = first
        self._variants: Sequence[VariantStream] | None = None
        self._rendered: dict[tuple[str, str, str], Rendered] = {}
        self._hosts: dict[str, tuple[Pathway, ...]] = {}

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME, here: str | None = None) -> Rendered | None:
        shown = self._shown
        variants = shown.announced
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
