"""The playlists clients see: what the server serves and holds blocking reloads on (shown once saved)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from ..playlist import hls
from ..playlist.master import render_master
from ..playlist.rendered import Rendered, Version
from ..source.owncast import SourceVariant

log = logging.getLogger(__name__)


class VisiblePlaylists:
    """The server's PlaylistSource: the visible renderings, and the waiters on a newer one."""

    def __init__(self) -> None:
        self.target_duration: int | None = None  # of the latest versions: Cache-Control, blocking timeouts
        self._visible: dict[int, Version] = {}
        self.announced: list[SourceVariant] | None = None  # Owncast's variants, as its master names them
        self._masters: dict[str, Rendered] = {}  # by variant file name: /live/'s and Owncast's /hls/
        self._changed = asyncio.Event()
        self.held_requests = 0  # in wait_for_sequence now (the HTTP cap and /metrics read it)
        self._released = False  # stopping: held requests are answered at once
        self._nudges = 0  # answer_held calls: requests held before one are answered

    # -- written by release.py only ----------------------------------------------------------------

    def under(self, target: int | None) -> None:
        self.target_duration = target

    def announce(self, variants: list[SourceVariant]) -> None:
        if variants != self.announced:
            self.announced = variants
            self._masters.clear()
            log.info("Owncast announces %d variant(s): %s", len(variants), [v.index for v in variants])

    def show(self, renderings: Mapping[int, Version]) -> None:
        """Make these versions (the latest pushed) visible and wake the requests held for a newer one."""
        self._visible.update(renderings)
        if self.held_requests:  # else nobody waits: no event to set (a pathway nobody reads, most pushes)
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def replace(self, renderings: Mapping[int, Version]) -> None:
        self._visible = dict(renderings)

    # -- read by the server --------------------------------------------------------------------------

    def media_playlist(self, variant: int) -> Rendered | None:
        version = self._visible.get(variant)
        return version.rendered if version is not None else None

    def version(self, variant: int) -> Version | None:
        return self._visible.get(variant)

    def last_sequence(self, variant: int) -> int | None:
        """The last number `variant`'s visible version lists, without rendering it."""
        version = self._visible.get(variant)
        return version.last_sequence if version is not None else None

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        """Rendered once per change of Owncast's variants and per variant file name."""
        master = self._masters.get(media_name)
        if master is None:
            variants = self.announced
            if not variants or any(v.index not in self._visible for v in variants):
                return None  # a player must find every variant it is offered
            master = self._masters[media_name] = render_master(variants, media_name)
        return master

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        """The playlist once it lists `sequence` (or ended), or None after `timeout` (6.2.5.2)."""
        self.held_requests += 1
        nudges = self._nudges
        try:
            async with asyncio.timeout(timeout):
                while True:
                    version = self._visible.get(variant)
                    if version is not None and (version.last_sequence >= sequence or version.ended):
                        return version.rendered
                    if self._released or self._nudges != nudges:
                        return version.rendered if version is not None else None
                    await self._changed.wait()
        except TimeoutError:
            return None
        finally:
            self.held_requests -= 1

    def answer_held(self) -> None:
        """Players were steered away from this pathway: every request held now gets the playlist as it is."""
        self._nudges += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def release_waiters(self) -> None:
        """Stopping: answer every held request now, and hold no new one."""
        self._released = True
        self._changed.set()
