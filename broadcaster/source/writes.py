"""Whether Owncast has finished writing a file: nobody has it open for writing any more and, for
MPEG-TS, it is a whole number of 188-byte packets holding the media its playlist names.

ffmpeg PUTs a playlist without waiting for its segment's answer, so an upload asks `finished` first. The
kernel is asked for writers at each look (leases.py); where it will not say, inotify's word is believed
while its watch is unbroken, and a file neither tells of is finished once quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from ..files import MAX_FILE_BYTES, Refused, Stamp, look_beneath
from . import inotify, leases, spans
from .spans import TS_PACKET as TS_PACKET  # bench/soak.py reads it here

log = logging.getLogger(__name__)

# Seconds a file must be unchanged to count as finished when no close was seen: Owncast's writes of one
# body follow each other within milliseconds (measured), this is many times that on a busy VM.
QUIET = 0.25
UNHEARD_QUIET = 2.0  # the same beside a kernel watch, for a file it never heard of (a slow writer's?)
POLL = 0.01  # seconds between two looks at a file no event tells of (a look: ~10 us)
# Seconds at most between two looks at a file the watch hears of (a writer through a hard link sends none).
EVENT_WAIT = 1.0
# A named file not there after this long was deleted (a wipe, a cleanup) and will not come: Owncast
# makes it before ffmpeg sends the playlist.
MISSING_WAIT = 2.0
# Files remembered (their last event): well over Owncast's cleanup, which keeps SegmentCount + 10 per variant.
REMEMBERED = 4096


class Finish(enum.Enum):
    READY = "ready"  # finished when asked
    WAITED = "waited"  # seen being written, then finished
    UNFINISHED = "unfinished"  # still being written when the limit passed
    MISSING = "missing"  # not there when the limit passed


class _State(enum.Enum):
    FINISHED = "finished"  # closed (the kernel's word), or quiet long enough
    WRITING = "writing"  # written since its last close (the kernel's word), or seen changing
    YOUNG = "young"  # unchanged so far, but changed too lately to tell
    MISSING = "missing"


class Writes:
    """Fed by the watcher, asked by the uploads. `kernel`: a file unheard of waits `unheard_quiet`."""

    def __init__(self, root: Path, *, kernel: bool, quiet: float = QUIET, unheard_quiet: float = UNHEARD_QUIET,
                 lease: bool = True,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._root = root
        self._writers: Callable[[int, Path], bool | None] = (
            leases.writers if lease else lambda _fd, _path: None)
        # From the start: an upload asked before the first watch, or between two, judges a file unheard of.
        self._quiet = unheard_quiet if kernel else quiet
        self._wall = wall
        self._mono = monotonic
        self._exact = False  # an unbroken kernel watch is feeding `note`
        self._writing: OrderedDict[Path, bool] = OrderedDict()  # file -> still being written (last event)
        self._named: OrderedDict[Path, float] = OrderedDict()  # MPEG-TS file -> its playlist's #EXTINF
        self._spans: dict[Path, tuple[tuple[int, int, int], bool]] = {}  # named file -> (version, short)
        self._changed = asyncio.Event()  # set at every note that may end a wait, then replaced
        self.waiting = 0  # calls of `finished` waiting now
        self._hooks: list[Callable[[Path | None], None]] = []  # told of each write heard (`follow`)

    def exact(self, on: bool) -> None:
        """A kernel watch begins (True) or ends (False): what was noted before is forgotten either way."""
        self._exact = on
        self.forget_all()

    def forget_all(self) -> None:
        """Events were lost (the kernel's queue overflowed): nothing noted so far can be believed."""
        self._writing.clear()
        self._wake()
        self._tell([None])

    def follow(self, hook: Callable[[Path | None], None]) -> None:
        """`hook(path)` after each write heard to a variant folder's media file; `hook(None)`: events lost."""
        self._hooks.append(hook)

    def changed(self, paths: list[Path]) -> None:
        """watchfiles' path: these files were made or changed (no write told from a close)."""
        media = [p for p in paths if self._media(p)]
        if media:
            self._wake()
            self._tell(list(dict.fromkeys(media)))

    def _media(self, path: Path) -> bool:
        return path.parent != self._root and path.parent.parent == self._root and path.suffix != ".m3u8"

    def _tell(self, paths: list[Path | None]) -> None:
        for hook in self._hooks:
            for path in paths:
                try:
                    hook(path)
                except Exception:  # a follower's bug must not stop the watch (called from its reader)
                    log.exception("telling of a write to %s failed", path)

    def note(self, events: list[inotify.Event]) -> None:
        """Events read from the kernel, in order, before any playlist they came with is read."""
        if not self._exact:
            return
        woke = False
        written: dict[Path, None] = {}  # media files written, in order (told to followers)
        for event in events:
            path = event.path
            if event.mask & inotify.IN_ISDIR or path.parent == self._root or path.suffix == ".m3u8":
                continue  # playlists are read whole or read again; only a variant folder's media counts
            if event.mask & inotify.IN_CLOSE_WRITE:
                self._writing[path] = False
            elif event.mask & inotify.IN_MODIFY:  # a write, or a truncation (O_TRUNC: a rewrite begins)
                self._writing[path] = True
                written[path] = None
            elif event.mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO):
                # A new file, or one renamed here (a rename is no close): unknown until written or closed.
                self._writing.pop(path, None)
                woke = True
                continue
            else:
                continue
            self._writing.move_to_end(path)
            if len(self._writing) > REMEMBERED:
                self._writing.popitem(last=False)
            woke = True
        if woke:
            self._wake()
        if written:
            self._tell(list(written))

    def named(self, path: Path, seconds: float) -> None:
        """A playlist names the MPEG-TS file `path` with `#EXTINF` `seconds` (less media: not finished)."""
        self._named[path] = seconds
        self._named.move_to_end(path)
        if len(self._named) > REMEMBERED:
            self._spans.pop(self._named.popitem(last=False)[0], None)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish:
        """Wait until `path` is finished, `limit` s at most; `on_writing()` once if seen being written."""
        parts = path.relative_to(self._root).parts
        start = self._mono()
        settling = _Settling(self._quiet, self._wall, self._mono)
        seen = was_missing = waited = False
        self.waiting += 1
        try:
            while True:
                state = self._look(path, parts, settling)
                was_missing |= state is _State.MISSING
                if not seen and (state is _State.WRITING or was_missing and state is not _State.MISSING):
                    seen = True
                    if on_writing is not None:
                        on_writing()
                if state is _State.FINISHED:
                    # A close heard after this began waiting: it was open for writing meanwhile.
                    closed = waited and self._exact and self._writing.get(path) is False
                    if closed and not seen and on_writing is not None:
                        on_writing()
                    return Finish.WAITED if seen or closed else Finish.READY
                missing = state is _State.MISSING
                left = start + (min(limit, MISSING_WAIT) if missing else limit) - self._mono()
                if left <= 0:
                    return Finish.MISSING if missing else Finish.UNFINISHED
                told = self._exact and path in self._writing
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, EVENT_WAIT if told else POLL)):
                        await self._changed.wait()
                waited = True
        finally:
            self.waiting -= 1

    def _look(self, path: Path, parts: tuple[str, ...], settling: _Settling) -> _State:
        heard = self._writing.get(path) if self._exact else None  # the events: written since a close, or closed
        named = self._named.get(path) if path.suffix == ".ts" else None
        try:
            look = look_beneath(self._root, parts, functools.partial(self._ask, named))
        except Refused:
            return _State.FINISHED  # not a file we read: the upload refuses it and says why
        except OSError:
            return _State.YOUNG  # out of handles, say: look again
        if look is None:
            return _State.MISSING
        stamp, (writing, short) = look  # the kernel's answer now: open for writing anywhere, or None
        if stamp.size > MAX_FILE_BYTES:
            return _State.FINISHED  # the upload refuses it for its size, at once: nothing to wait for
        ts = path.suffix == ".ts"
        if writing is None:
            if heard is None:
                state = settling.judge(stamp, ts)
                return _State.WRITING if short and state is _State.FINISHED else state
            writing = heard  # without the answer, the events' word: written since its last close
        # Still open for writing, or closed inside a packet or short of its #EXTINF: the rest is to come.
        return _State.WRITING if writing or ts and stamp.size % TS_PACKET or short else _State.FINISHED

    def _ask(self, named: float | None, fd: int, path: Path) -> tuple[bool | None, bool]:
        """Whether anyone has `fd`'s file open for writing, and whether it is short of the `named` #EXTINF."""
        writing = self._writers(fd, path)
        if named is None or writing:
            return writing, False
        st = os.fstat(fd)
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = self._spans.get(path)
        if known is None or known[0] != version:  # read once per version, not at every look of a wait
            known = self._spans[path] = (version, spans.short_of(spans.read_seconds(fd, st.st_size), named))
        return writing, known[1]


class _Settling:
    """One file judged without a close: finished once unchanged for `quiet` seconds (by its mtime, or by
    two looks that far apart, whichever comes first) and, for MPEG-TS, whole packets; being written when
    seen changing."""

    def __init__(self, quiet: float, wall: Callable[[], float], mono: Callable[[], float]) -> None:
        self._quiet, self._wall, self._mono = quiet, wall, mono
        self._last: Stamp | None = None
        self._since = 0.0  # monotonic: when _last was first seen
        self._changed = False

    def judge(self, stamp: Stamp, ts: bool) -> _State:
        now = self._mono()
        if stamp != self._last:
            self._changed |= self._last is not None
            self._last, self._since = stamp, now
        quiet = now - self._since >= self._quiet or self._wall() - stamp.mtime_ns / 1e9 >= self._quiet
        if quiet:  # MPEG-TS is whole 188-byte packets: else the rest is still to come
            return _State.WRITING if ts and stamp.size % TS_PACKET else _State.FINISHED
        return _State.WRITING if self._changed else _State.YOUNG
