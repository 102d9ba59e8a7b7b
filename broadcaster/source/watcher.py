"""Watches Owncast's HLS folder and hands every complete playlist to the publisher; the variant folders'
events go to writes.Writes, which the uploads ask. An error in one read is logged and the watch goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from ..files import is_temporary
from ..lograte import RateLimitedLog
from ..metrics import Metrics
from . import inotify
from .notices import InputNotices
from .owncast import MASTER_PLAYLIST, VARIANT_PLAYLIST
from .playlist_reader import VARIANT_DIR, NEW_MASTER_WAIT, PlaylistReader, PlaylistSink
from .tasks import cancelled
from .writes import Writes

log = logging.getLogger(__name__)

_KNOWN_SUFFIXES = {".m3u8", ".ts", ".m4s", ".mp4", ".tmp", ".aac"}
_RETRY_SECONDS = 0.25  # a playlist not opened for lack of file handles is read again this soon
# While Owncast writes the folder is never quiet: rescan anyway after this many rescan intervals, so
# nothing an event never told of is missed for long.
_BUSY_RESCAN_FACTOR = 3
# ffmpeg writes the multivariant playlist after every variant's first segment (5 s at latency level 4): a
# variant playlist without one for longer than this is a stream no player can start.
MASTER_GRACE = 15.0
# watchfiles' defaults (1600 ms debounce, 50 ms step) would delay every segment by up to 1.6 s.
_DEBOUNCE_MS = 50
_STEP_MS = 1

@dataclass(frozen=True)
class WatchTiming:
    """rescan_interval: the folder quiet this long is scanned again; the others: see their defaults."""

    rescan_interval: float = 1.0
    master_grace: float = MASTER_GRACE
    new_master_wait: float = NEW_MASTER_WAIT


class HlsWatcher:
    """Feeds `sink` from HLS_DIR on every file event, and a rescan when quiet (and every few while busy)."""

    def __init__(self, hls_dir: Path, sink: PlaylistSink, metrics: Metrics, *,
                 timing: WatchTiming = WatchTiming(), kernel: bool | None = None,
                 writes: Writes | None = None) -> None:
        """kernel: inotify on the event loop (the default where available), else watchfiles."""
        self._notes = InputNotices(hls_dir, metrics, timing.master_grace)
        self._kernel = inotify.available() if kernel is None else kernel
        self.writes = writes or Writes(hls_dir, kernel=self._kernel)
        self._dir = hls_dir
        self._metrics = metrics
        self._reader = PlaylistReader(hls_dir, sink, self._notes, self.writes, self._read_later,
                                      timing.new_master_wait)
        self._read = self._reader.read
        self._rescan_ms = max(1, int(timing.rescan_interval * 1000))
        self._busy_rescan = timing.rescan_interval * _BUSY_RESCAN_FACTOR
        self._later: dict[Path | None, asyncio.TimerHandle] = {}  # reads waiting for file handles
        self._last_scan = 0.0  # monotonic
        self.scans = 0  # scans so far (quiet or busy): a test waits for one instead of sleeping
        self._errors = RateLimitedLog(log)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._safely(self.scan)
            self._task = asyncio.create_task(self._run(), name="hls-watcher")

    async def stop(self) -> None:
        self._stop.set()
        for handle in self._later.values():
            handle.cancel()
        self._later.clear()
        task, self._task = self._task, None
        await cancelled(task)

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._dir)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    async def _run(self) -> None:
        while not self._stop.is_set():
            # Owncast recreates HLS_DIR on every transcoder start: a new folder (inode) needs a new watch.
            identity = self._identity()
            if identity is None:
                await asyncio.sleep(self._rescan_ms / 1000)
                continue
            try:
                if self._kernel:
                    await self._watch_kernel(identity)
                else:
                    await self._watch_polling(identity)
            except Exception as err:  # e.g. the folder vanished while the watch was being set up
                self._errors.warning("watch", "watching %s failed (%s); retrying", self._dir, err)
                await asyncio.sleep(self._rescan_ms / 1000)
            self._safely(self.scan)

    async def _watch_kernel(self, identity: tuple[int, int]) -> None:
        """inotify on the event loop: nothing runs until an event, or a rescan interval of quiet."""
        loop = asyncio.get_running_loop()
        replaced = loop.create_future()
        rescan = self._rescan_ms / 1000
        last_event = loop.time()
        timer: asyncio.TimerHandle | None = None

        def on_events() -> None:
            nonlocal last_event
            try:
                events = watch.read()
            except OSError as err:  # e.g. out of inotify watches for a new folder: watch anew
                if not replaced.done():
                    replaced.set_exception(err)
                return
            if not events:
                return
            last_event = loop.time()
            self.writes.note(events)  # first: a playlist in this batch may name a segment written in it
            if any(e.mask & inotify.IN_Q_OVERFLOW for e in events):
                self.writes.forget_all()  # what was written meanwhile is unknown, not finished
                self._metrics.inotify_overflows.inc()
                self._errors.warning("overflow", "the kernel's inotify queue for %s overflowed (more than "
                                     "fs.inotify.max_queued_events waiting): events were lost; every playlist is "
                                     "read again, and files written meanwhile are judged without their events",
                                     self._dir)
                self._safely(self.scan, False)  # the kernel dropped events: read everything
            else:
                self._safely(self._on_paths, [e.path for e in events if self._to_read(e)])
                if time.monotonic() - self._last_scan >= self._busy_rescan:
                    self._safely(self.scan, False)
            gone = any(e.path == self._dir and e.mask & (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF)
                       for e in events)
            if (gone or self._identity() != identity) and not replaced.done():
                replaced.set_result(None)

        def on_quiet() -> None:
            nonlocal timer  # re-armed from the last event, not moved at each: one timer a rescan interval
            due = last_event + rescan
            if loop.time() >= due:
                self._safely(self.scan)
                if self._identity() != identity and not replaced.done():
                    replaced.set_result(None)
                due = loop.time() + rescan
            timer = loop.call_at(due, on_quiet)

        with inotify.FolderWatch(self._dir) as watch:
            self.writes.exact(True)  # from now the kernel tells of every write and close
            loop.add_reader(watch.fileno(), on_events)
            try:
                self._safely(self.scan)  # what was written before the watch began
                timer = loop.call_at(loop.time() + rescan, on_quiet)
                await replaced
                log.info("%s was replaced; watching the new folder", self._dir)
            finally:
                self.writes.exact(False)
                loop.remove_reader(watch.fileno())
                if timer is not None:
                    timer.cancel()

    def _to_read(self, event: inotify.Event) -> bool:
        """Written and closed, or moved in; or made in the top folder (a variant folder, a symlink)."""
        if event.path == self._dir:
            return False
        return bool(event.mask & inotify.READ_MASK
                    or event.mask & inotify.IN_CREATE and event.path.parent == self._dir)

    async def _watch_polling(self, identity: tuple[int, int]) -> None:
        """Elsewhere (development machines): watchfiles, looking every 1 ms (a few % of a core)."""
        async for changes in watchfiles.awatch(
            self._dir,
            watch_filter=None,
            debounce=_DEBOUNCE_MS,
            step=_STEP_MS,
            rust_timeout=self._rescan_ms,
            yield_on_timeout=True,
            stop_event=self._stop,
        ):
            if not changes:
                self._safely(self.scan)
            else:
                paths = [Path(p) for c, p in changes if c != watchfiles.Change.deleted]
                self.writes.changed(paths)  # first, as on inotify's path: a segment written again
                self._safely(self._on_paths, paths)
                if time.monotonic() - self._last_scan >= self._busy_rescan:
                    self._safely(self.scan, False)
            # The folder itself deleted: the new one may even get the old inode number back.
            root_deleted = any(c == watchfiles.Change.deleted and p == str(self._dir) for c, p in changes)
            if root_deleted or self._identity() != identity:
                log.info("%s was replaced; watching the new folder", self._dir)
                return

    def _safely(self, step: Callable[..., object], *args: object) -> None:
        try:
            step(*args)
        except Exception as err:
            self._errors.error("read", "reading %s failed: %r; carrying on", self._dir, err)

    def _on_paths(self, paths: list[Path]) -> None:
        """Files and folders made, written or moved in since the last call; the master read first."""
        playlists: set[Path] = set()
        for path in paths:
            if path.name.endswith(".m3u8"):
                playlists.add(path)
            elif path.parent == self._dir and VARIANT_DIR.fullmatch(path.name):
                playlists.add(path / VARIANT_PLAYLIST)  # a variant folder: its playlist may be there already
            elif path.suffix not in _KNOWN_SUFFIXES and not path.is_dir():
                self._notes.note_stray(path)
        for path in sorted(playlists, key=lambda p: p != self._dir / MASTER_PLAYLIST):
            self._read(path)

    def scan(self, quiet: bool = True) -> None:
        """Read the master and every variant it names (`quiet`: one that does not parse is broken)."""
        self._last_scan = time.monotonic()
        self.scans += 1
        known = self._reader.variants or frozenset()
        master_ok = self._read(self._dir / MASTER_PLAYLIST, quiet)  # reads any variant it newly names
        for index in sorted(known & (self._reader.variants or frozenset())):
            self._read(self._dir / str(index) / VARIANT_PLAYLIST, quiet)
        try:
            entries = list(os.scandir(self._dir))
        except OSError as err:
            if is_temporary(err):
                self._read_later(None, err)
            return
        named = {str(i) for i in self._reader.variants or ()}
        if self._reader.variants is None:
            orphans = [Path(e.path) / VARIANT_PLAYLIST for e in entries if VARIANT_DIR.fullmatch(e.name)]
            orphans = [p for p in orphans if p.is_file()]
            if orphans:
                self._notes.note_orphan(orphans[0])
            else:
                self._notes.clear_orphan()  # Owncast wiped the folder before writing a master
        for entry in entries:
            if not VARIANT_DIR.fullmatch(entry.name):
                continue
            if entry.is_symlink():
                self._notes.note_symlink(Path(entry.path))
            elif master_ok and entry.name not in named:
                self._notes.note_unnamed(Path(entry.path))

    def master_missing(self) -> str | None:
        return self._notes.master_missing()

    def _read_later(self, path: Path | None, err: OSError) -> None:
        """Read `path` (None: scan) again shortly: it could not be opened for lack of file handles."""
        self._errors.warning("handles", "cannot read %s for now (%s); reading it again shortly",
                             path or self._dir, err.strerror)
        if path in self._later or self._stop.is_set():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # scans driven by hand (tests): the next one reads it
            return
        self._later[path] = loop.call_later(_RETRY_SECONDS, self._retry, path)

    def _retry(self, path: Path | None) -> None:
        self._later.pop(path, None)
        if self._stop.is_set():
            return
        if path is None:
            self._safely(self.scan, False)
        else:
            self._read(path)

