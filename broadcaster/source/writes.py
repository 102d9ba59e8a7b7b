"""Whether Owncast has finished writing a file: nobody has it open for writing any more and, for
MPEG-TS, it is a whole number of 188-byte packets holding the media its playlist names.

ffmpeg PUTs the playlist that names a segment without waiting for the segment's answer, so a listed
segment may still be being copied (docs/owncast.md, "How files are written"): an upload asks `finished`
first. Whether anyone has the file open for writing is asked of the kernel at each look (leases.py): the
one exact answer whoever the writer is (a close event can be any process's, a writer may open the file
again, events can be lost). Closed inside a packet, or with less media than the #EXTINF its playlist
names (`named`; spans.py), it is a writer's that opens it again for the rest.

Inotify's IN_MODIFY and IN_CLOSE_WRITE wake a waiting upload, so nothing polls. Where the kernel will not
answer the lease, inotify's word is taken instead, believed only while the watch that saw it is unbroken
(an overflow or a new watch forgets it all). A file neither tells of is finished once unchanged for a
quiet period: QUIET on watchfiles' path, the longer UNHEARD_QUIET beside a kernel watch (only a restart's
or an overflow's files pay it, and those may be a slow writer's). Every wait is bounded by the caller's
limit: a file still being written then is given up, never read. A writer may open a file again after its
close: each write heard is told to whoever `follow`s (publish/rewrites.py uploads it again), and None
when events were lost.
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

# Seconds a file must be unchanged to count as finished when no close was seen. Owncast's writes of one
# body follow each other within milliseconds (measured: a 465 KB passthrough segment's tail came 10 ms
# after the playlist); a quarter of a second is many times that on a busy VM, and is what a segment
# costs on that path.
QUIET = 0.25
UNHEARD_QUIET = 2.0  # the same beside a kernel watch, for a file it never heard of (see above)
POLL = 0.01  # seconds between two looks at a file no event tells of (a look: ~10 us)
# Seconds at most between two looks at a file whose events the watch hears: an event wakes the wait
# sooner; a writer through another name of the file (a hard link elsewhere) sends none here.
EVENT_WAIT = 1.0
# A file a playlist names that is not there: Owncast makes it when the segment's PUT begins, which is
# before ffmpeg sends the playlist, so only a handler not yet scheduled is that late; after this long,
# it was deleted (a wipe, Owncast's cleanup after an outage) and will not come.
MISSING_WAIT = 2.0
# Files remembered (their last event): every segment of every variant for well over Owncast's cleanup,
# which keeps SegmentCount + 10 per variant; the oldest are forgotten first (then judged as unknown).
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
    """Fed by the watcher, asked by the uploads. `kernel`: the watcher reads inotify, so a file unheard of
    waits `unheard_quiet` (else `quiet`); `lease`: the kernel is asked at each look (leases.writers)."""

    def __init__(self, root: Path, *, kernel: bool, quiet: float = QUIET, unheard_quiet: float = UNHEARD_QUIET,
                 lease: bool = True,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._root = root
        self._writers: Callable[[int, Path], bool | None] = (
            leases.writers if lease else lambda _fd, _path: None)
        # From the start: an upload asked before the first watch begins, or between two, judges a file
        # the kernel has not heard of.
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

    # -- fed by the watcher ------------------------------------------------------------------------

    def exact(self, on: bool) -> None:
        """A kernel watch begins (True: its events will come to `note`) or ends (False). Whatever was
        noted before is forgotten either way: events between two watches are lost."""
        self._exact = on
        self.forget_all()

    def forget_all(self) -> None:
        """Events were lost (the kernel's queue overflowed): nothing noted so far can be believed."""
        self._writing.clear()
        self._wake()
        self._tell([None])

    def follow(self, hook: Callable[[Path | None], None]) -> None:
        """`hook(path)` after each write heard to a media file in a variant folder (a write or a
        truncation: its bytes may have changed); `hook(None)` when events were lost (any may have)."""
        self._hooks.append(hook)

    def changed(self, paths: list[Path]) -> None:
        """watchfiles' path: these files were made or changed (it tells no write from a close). Waits look
        again at once, and the followers hear of each media file of a variant folder."""
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
                # A new file, or one renamed to this name (its writer may still have it open: a rename
                # is no close): nothing is known of it until it is written or closed (a symlink, a FIFO
                # or a folder made there never is: those are judged, and refused, as files).
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
        """A playlist names the MPEG-TS file `path` with `#EXTINF` `seconds` (the watcher says so before it
        hands the playlist on): closed with less media than that, the file is not finished."""
        self._named[path] = seconds
        self._named.move_to_end(path)
        if len(self._named) > REMEMBERED:
            self._spans.pop(self._named.popitem(last=False)[0], None)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- asked by the uploads ----------------------------------------------------------------------

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish:
        """Wait until Owncast has finished writing `path` (under root), `limit` seconds at most (a file not
        there at all, MISSING_WAIT at most). `on_writing` is called once if the file is seen being written
        meanwhile (told by the kernel, seen changing, or made after its playlist named it)."""
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
                    # A close heard after this began waiting: the file was open for writing meanwhile
                    # (its last write and the close may come in one read of the kernel's events).
                    closed = waited and self._exact and self._writing.get(path) is False
                    if closed and not seen and on_writing is not None:
                        on_writing()
                    return Finish.WAITED if seen or closed else Finish.READY
                missing = state is _State.MISSING
                left = start + (min(limit, MISSING_WAIT) if missing else limit) - self._mono()
                if left <= 0:
                    return Finish.MISSING if missing else Finish.UNFINISHED
                # A close comes as an event; without the kernel's word, look again shortly.
                told = self._exact and path in self._writing
                await self._next_change(min(left, EVENT_WAIT if told else POLL))
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
        if writing or ts and stamp.size % TS_PACKET:
            # Still open for writing; or closed inside a packet (a writer that closed early): the rest
            # is still to come, or never will (then the caller's limit gives it up).
            return _State.WRITING
        if short:
            # Closed on a packet boundary with less media than its playlist names: a writer that will
            # open it again. Listed now, viewers and caches would keep the half.
            return _State.WRITING
        return _State.FINISHED

    def _ask(self, named: float | None, fd: int, path: Path) -> tuple[bool | None, bool]:
        """Asked of the file open as `fd`: whether anyone has it open for writing (leases.writers), and
        whether it holds less media than the `named` #EXTINF (spans.py; only when no writer is known)."""
        writing = self._writers(fd, path)
        if named is None or writing:
            return writing, False
        st = os.fstat(fd)
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = self._spans.get(path)
        if known is None or known[0] != version:  # read once per version, not at every look of a wait
            known = self._spans[path] = (version, spans.short_of(spans.read_seconds(fd, st.st_size), named))
        return writing, known[1]

    async def _next_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()


class _Settling:
    """One file judged without a close: finished once unchanged for `quiet` seconds (by its mtime
    against the wall clock, or by two looks that far apart on this process's clock, whichever comes
    first: a file system whose clock differs from ours still settles) and, for MPEG-TS, whole packets.
    Being written: seen changing between two looks, or quiet but cut inside a packet."""

    def __init__(self, quiet: float, wall: Callable[[], float], mono: Callable[[], float]) -> None:
        self._quiet = quiet
        self._wall = wall
        self._mono = mono
        self._last: Stamp | None = None
        self._since = 0.0  # monotonic: when _last was first seen
        self._changed = False

    def judge(self, stamp: Stamp, ts: bool) -> _State:
        now = self._mono()
        if stamp != self._last:
            self._changed |= self._last is not None
            self._last, self._since = stamp, now
        quiet = now - self._since >= self._quiet or self._wall() - stamp.mtime_ns / 1e9 >= self._quiet
        if quiet and ts and stamp.size % TS_PACKET:
            return _State.WRITING  # MPEG-TS is whole 188-byte packets: the rest is still to come
        if quiet:
            return _State.FINISHED
        return _State.WRITING if self._changed else _State.YOUNG
