"""The race of issue 39 made certain, for tests: a segment's last bytes reach the disk only after the
variant playlist naming it has been rewritten.

ffmpeg sends a segment's body, then PUTs the variant playlist that lists it on another connection without
waiting for the answer; Owncast handles each request on its own, so the playlist can name the segment
while the segment's handler still copies its last bytes (issue 39; docs/owncast.md, "Segment first, then
playlist", said the opposite before it). By chance that window is milliseconds wide: the bug showed in 4
of 8 runs. With LateTails the PUT receiver writes all but the last `share` of each media segment, keeps
the file open until the next playlist PUT in its folder that names it has been written, then `linger`
seconds more (so a reader that reacts to the playlist finds the file cut, on a busy machine too), then
writes the rest and closes the file.

Bounded: the rest is written `longest` seconds after the body came in whether or not a playlist named it
(plus `linger` if one did), and at once when the receiver closes. Only media segments (.ts, .m4s) are held:
playlists, init sections and anything else are written as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from broadcaster.demo.owncast_files import listed_segments

HELD_SUFFIXES = (".ts", ".m4s")


class LateTails:
    """Which segments wait for their tail, and when each may be finished."""

    def __init__(self, *, linger: float = 0.5, longest: float = 3.0, share: float = 0.2) -> None:
        if not 0 < share < 1 or linger < 0 or longest <= 0:
            raise ValueError(f"LateTails: share in (0, 1), linger >= 0, longest > 0; not {share}, {linger}, "
                             f"{longest}")
        self.linger, self.longest, self.share = linger, longest, share
        self._waiting: dict[Path, asyncio.Event] = {}  # segment -> set once a playlist named it
        self._named: dict[Path, frozenset[str]] = {}  # folder -> what its latest playlist names
        self._closing = asyncio.Event()
        self.held = 0  # segments held so far
        self.timed_out = 0  # ...whose tail went at `longest`, no playlist having named them

    @staticmethod
    def applies(path: Path) -> bool:
        return path.suffix in HELD_SUFFIXES

    async def hold(self, segment: Path) -> None:
        """Returns when `segment`'s tail may be written."""
        if self._closing.is_set():
            return
        named = self._waiting[segment] = asyncio.Event()
        if segment.name in self._named.get(segment.parent, frozenset()):
            named.set()  # the playlist came in before this body's last chunk was read
        self.held += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(named.wait(), self.longest)
            if not named.is_set():
                self.timed_out += 1
            elif not self._closing.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.linger)
        finally:
            self._waiting.pop(segment, None)

    def playlist_written(self, playlist: Path, text: str) -> None:
        """`playlist` was rewritten (closed) with `text`: the segments it names may be finished."""
        names = frozenset(listed_segments(text))
        self._named[playlist.parent] = names
        for name in names:
            waiting = self._waiting.get(playlist.parent / name)
            if waiting is not None:
                waiting.set()

    def release_all(self) -> None:
        """The receiver closes: every tail now, none held from here on."""
        self._closing.set()
        for waiting in self._waiting.values():
            waiting.set()
