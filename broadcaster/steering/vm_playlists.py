"""The VM pathway's media playlists: each segment named /live/vm/<n>/<file> (hls.vm_segment_uri), the VM's
own copy (http/pathway.py).

The publisher shows the VM pathway's versions (publish/release.py's `ahead`: every segment the VM kept,
its upload landed or not), rendered with the bucket's URLs; each is served here with its URIs replaced
(Rendered.replaced), made on first demand (nobody asks while players are on the bucket) and kept for
as long as it is the one shown. The keys it lists are marked servable in the copies (`Copies.listed`)
as it is made, so the VM never answers for a segment its playlists did not list. The same numbers,
discontinuities, durations and dates as the bucket's (6.2.4, 4.4.6.6), ahead of it by the uploads
still on their way, only other URIs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from ..playlist import hls
from ..playlist.rendered import Rendered
from .bucket_pathway import Versions  # the VM pathway's versions as the publisher shows them

_MAP = b'#EXT-X-MAP:URI="'


class Listing(Protocol):
    def listed(self, key: str) -> None: ...


class Landed(Protocol):
    """The bucket pathway's playlists as shown (publish/visible.py's VisiblePlaylists): only segments in
    the bucket."""

    def media_playlist(self, variant: int) -> Rendered | None: ...

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None: ...


class VmPlaylists:
    """The server's PlaylistSource for /live/vm/<n>/... and /hls/vm/<n>/....; `landed`: the bucket
    pathway's playlists, for landed_url."""

    def __init__(self, shown: Versions, copies: Listing, key_for: Callable[[int, str], str],
                 landed: Landed | None = None) -> None:
        self._shown = shown
        self._copies = copies
        self._key_for = key_for
        self._landed = landed
        self._made: dict[int, tuple[Rendered, Rendered]] = {}  # variant -> (the bucket's, ours)
        self._urls: dict[int, tuple[Rendered, dict[str, str]]] = {}  # variant -> (landed, file -> its URL)

    @property
    def target_duration(self) -> int | None:
        return self._shown.target_duration

    @property
    def held_requests(self) -> int:
        return self._shown.held_requests

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        return None  # the multivariant playlist names these; it has no VM copy of its own

    def media_playlist(self, variant: int) -> Rendered | None:
        return self._ours(variant, self._shown.media_playlist(variant))

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        return self._ours(variant, await self._shown.wait_for_sequence(variant, sequence, timeout))

    def landed_url(self, variant: int, name: str) -> str | None:
        """The bucket's URL of segment (or init section) `name` of `variant`, as the bucket pathway's
        playlist lists it now: it is in the bucket; None when that playlist does not list it."""
        rendered = self._landed.media_playlist(variant) if self._landed is not None else None
        if rendered is None:
            return None
        known = self._urls.get(variant)
        if known is None or known[0] is not rendered:
            known = (rendered, _urls(rendered.body))
            self._urls[variant] = known
        return known[1].get(name)

    async def landed_url_within(self, variant: int, name: str, timeout: float) -> str | None:
        """landed_url, once the bucket pathway's playlist lists it (the VM's lists a segment as soon as it
        kept its copy, the bucket's once its upload landed: usually a moment later); None after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            url = self.landed_url(variant, name)
            landed = self._landed
            if url is not None or landed is None:
                return url
            rendered = landed.media_playlist(variant)
            remaining = deadline - loop.time()
            if remaining <= 0 or (rendered is not None and rendered.ended):
                return None
            newer = await landed.wait_for_sequence(variant, rendered.last_sequence + 1 if rendered else 0,
                                                   remaining)
            if newer is None or newer is rendered:  # the time is up, or the service stops
                return self.landed_url(variant, name)

    def uri(self, variant: int, uri: bytes) -> bytes:
        """The VM's URI for a segment (or init section) the bucket's version of `variant` lists at `uri`,
        servable by the VM from now on (steering/bucket_pathway.py lists such URIs too)."""
        return self._name(variant, uri)

    def _ours(self, variant: int, bucket: Rendered | None) -> Rendered | None:
        if bucket is None:
            return None
        made = self._made.get(variant)
        if made is not None and made[0] is bucket:
            return made[1]
        ours = bucket.replaced(lambda body: self._replace(variant, body))
        self._made[variant] = (bucket, ours)
        return ours

    def _replace(self, variant: int, body: bytes) -> bytes:
        lines = body.split(b"\n")
        for i, line in enumerate(lines):
            if line.startswith(_MAP):
                end = line.index(b'"', len(_MAP))
                name = self._name(variant, line[len(_MAP):end])
                lines[i] = _MAP + name + line[end:]
            elif line and not line.startswith(b"#"):
                lines[i] = self._name(variant, line)
        return b"\n".join(lines)

    def _name(self, variant: int, uri: bytes) -> bytes:
        name = urlsplit(uri.decode()).path.rpartition("/")[2]
        self._copies.listed(self._key_for(variant, name))
        return hls.vm_segment_uri(variant, name).encode()


def _urls(body: bytes) -> dict[str, str]:
    """Each URI a media playlist lists (segments and EXT-X-MAP), by its file name."""
    out: dict[str, str] = {}
    for raw in body.split(b"\n"):
        if raw.startswith(_MAP):
            raw = raw[len(_MAP):raw.index(b'"', len(_MAP))]
        elif not raw or raw.startswith(b"#"):
            continue
        uri = raw.decode()
        out[urlsplit(uri).path.rpartition("/")[2]] = uri
    return out
