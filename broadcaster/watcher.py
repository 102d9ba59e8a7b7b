"""Watches Owncast's HLS folder and hands every complete playlist to the publisher.

Only playlists are read: a segment counts as finished when its variant playlist lists it (Owncast
writes the segment in place first, then rewrites the playlist in place). A playlist read half-written
fails to parse and is simply read again on the next event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import Protocol

import watchfiles

from .metrics import Metrics
from .owncast import MASTER_PLAYLIST, VARIANT_PLAYLIST, PlaylistError, SourcePlaylist, SourceVariant
from .owncast import parse_master_playlist, parse_media_playlist

log = logging.getLogger(__name__)

_VARIANT_DIR = re.compile(r"\d{1,3}")
_MAX_PLAYLIST_BYTES = 1024 * 1024
_KNOWN_SUFFIXES = {".m3u8", ".ts", ".m4s", ".mp4", ".tmp", ".aac"}
_STRAY_LOG_LIMIT = 1000


class PlaylistSink(Protocol):
    def on_master(self, variants: list[SourceVariant]) -> None: ...
    def on_variant_playlist(self, index: int, playlist: SourcePlaylist) -> None: ...


def read_playlist(path: Path) -> str:
    """Read a playlist without following symlinks; raises OSError or PlaylistError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(_MAX_PLAYLIST_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_PLAYLIST_BYTES:
        raise PlaylistError(f"larger than {_MAX_PLAYLIST_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PlaylistError("not UTF-8 text") from err


_QUIET_STRIKES = 3


def _fingerprint(path: Path) -> tuple[int, int] | None:
    """Size and modification time (of a symlink itself, as read_playlist never follows one): any
    write in place changes them."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class HlsWatcher:
    """Feeds `sink` from HLS_DIR: on every file event, plus a rescan whenever the folder is quiet
    for `rescan_interval` (catches anything the kernel's event queue dropped)."""

    def __init__(
        self,
        hls_dir: Path,
        sink: PlaylistSink,
        metrics: Metrics,
        *,
        rescan_interval: float = 1.0,
        debounce_ms: int = 50,
        step_ms: int = 1,
    ) -> None:
        self._dir = hls_dir
        self._sink = sink
        self._metrics = metrics
        self._rescan_ms = max(1, int(rescan_interval * 1000))
        # watchfiles' defaults (1600 ms debounce, 50 ms step) would delay every segment by up to
        # 1.6 s. A 1 ms step returns a quiet change set within a few ms; debounce only caps a storm.
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._last_text: dict[Path, str] = {}
        self._bad: dict[Path, str] = {}  # playlists that failed to parse, with the error, logged once
        # Failed quiet rescans not yet warned about: (error, file fingerprint, how many in a row).
        self._suspect: dict[Path, tuple[str, tuple[int, int] | None, int]] = {}
        self._stray: set[str] = set()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self.scan()
            self._task = asyncio.create_task(self._run(), name="hls-watcher")

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._dir)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    async def _run(self) -> None:
        while not self._stop.is_set():
            # Owncast deletes and recreates HLS_DIR on every transcoder start; an inotify watch dies
            # with the folder it watched, so a new folder (new inode) means a new watch.
            identity = self._identity()
            if identity is None:
                await asyncio.sleep(self._rescan_ms / 1000)
                continue
            try:
                async for changes in watchfiles.awatch(
                    self._dir,
                    watch_filter=None,
                    debounce=self._debounce_ms,
                    step=self._step_ms,
                    rust_timeout=self._rescan_ms,
                    yield_on_timeout=True,
                    stop_event=self._stop,
                ):
                    if changes:
                        self._on_changes(changes)
                    else:
                        self.scan()
                    # The folder itself deleted: the new one may even get the old inode number back.
                    root_deleted = any(c == watchfiles.Change.deleted and p == str(self._dir) for c, p in changes)
                    if root_deleted or self._identity() != identity:
                        log.info("%s was replaced; watching the new folder", self._dir)
                        break
            except asyncio.CancelledError:
                raise
            except Exception as err:  # e.g. the folder vanished while the watch was being set up
                log.warning("watching %s failed (%s); retrying", self._dir, err)
                await asyncio.sleep(self._rescan_ms / 1000)
            self.scan()

    def _on_changes(self, changes: set[tuple[watchfiles.Change, str]]) -> None:
        # The master first, so a new variant is known before its segments are listed.
        playlists: set[Path] = set()
        for change, raw in changes:
            path = Path(raw)
            if change == watchfiles.Change.deleted:
                continue
            if path.name.endswith(".m3u8"):
                playlists.add(path)
            elif path.suffix not in _KNOWN_SUFFIXES and not path.is_dir():
                self._note_stray(path)
        for path in sorted(playlists, key=lambda p: p != self._dir / MASTER_PLAYLIST):
            self._read(path)

    def scan(self) -> None:
        """Read every playlist; unchanged ones cost a read and a string compare.

        The folder has been quiet when this runs, so a playlist that still does not parse is broken,
        not half-written: that is worth a warning (once per file and error).
        """
        self._read(self._dir / MASTER_PLAYLIST, quiet=True)
        try:
            entries = list(os.scandir(self._dir))
        except OSError:
            return
        for entry in entries:
            if _VARIANT_DIR.fullmatch(entry.name) and entry.is_symlink():
                self._note_symlink(Path(entry.path))
            elif _VARIANT_DIR.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                self._read(Path(entry.path) / VARIANT_PLAYLIST, quiet=True)

    def _read(self, path: Path, quiet: bool = False) -> None:
        kind = self._classify(path)
        if kind is None:
            self._note_stray(path)
            return
        try:
            text = read_playlist(path)
        except FileNotFoundError:
            return
        except (OSError, PlaylistError) as err:
            self._note_bad(path, str(err), quiet)
            return
        if self._last_text.get(path) == text:
            return
        try:
            if isinstance(kind, int):
                playlist = parse_media_playlist(text)
            else:
                variants = parse_master_playlist(text)
        except PlaylistError as err:
            self._note_bad(path, str(err), quiet)  # usually half-written: the next event reads it again
            return
        try:
            if isinstance(kind, int):
                self._sink.on_variant_playlist(kind, playlist)
            else:
                self._sink.on_master(variants)
        except Exception:  # a bug of ours must not stop the watch; say so loudly, once per version
            log.exception("handling %s failed", path)
        self._last_text[path] = text
        self._bad.pop(path, None)
        self._suspect.pop(path, None)

    def _classify(self, path: Path) -> str | int | None:
        try:
            rel = path.relative_to(self._dir)
        except ValueError:
            return None
        parts = rel.parts
        if parts == (MASTER_PLAYLIST,):
            return "master"
        if len(parts) == 2 and _VARIANT_DIR.fullmatch(parts[0]) and parts[1] == VARIANT_PLAYLIST:
            if (self._dir / parts[0]).is_symlink():
                return None
            return int(parts[0])
        return None

    def _note_bad(self, path: Path, why: str, quiet: bool) -> None:
        # Half-written playlists are normal while Owncast writes; one still broken when quiet is not.
        key = f"{'quiet' if quiet else 'busy'}:{why}"
        if self._bad.get(path) == key or (not quiet and path in self._bad):
            return
        if quiet:
            # A quiet rescan can still land in a rewrite that starts just then (1 s segments leave
            # the folder quiet for about as long as the rescan waits): broken if the next quiet rescan
            # finds the very same file (unchanged) broken the same way, or if the same error comes
            # back at _QUIET_STRIKES quiet rescans in a row, rewrites or not, without a good read.
            fingerprint = _fingerprint(path)
            last = self._suspect.get(path)
            strikes = last[2] + 1 if last is not None and last[0] == why else 1
            self._suspect[path] = (why, fingerprint, strikes)
            unchanged = last is not None and last[0] == why and last[1] == fingerprint
            if not unchanged and strikes < _QUIET_STRIKES:
                log.debug("not using %s yet: %s (checking again when quiet)", path, why)
                return
        self._bad[path] = key
        if quiet:
            self._metrics.input_rejected.labels(reason="bad_playlist").inc()
            log.warning("ignoring %s: %s", path, why)
        else:
            log.debug("not using %s yet: %s", path, why)

    def _note_stray(self, path: Path) -> None:
        top = self._symlinked_top(path)
        if top is not None:  # inotify follows a symlink that was there when the watch began
            self._note_symlink(top)
            return
        name = str(path)
        if name in self._stray or len(self._stray) >= _STRAY_LOG_LIMIT:
            return
        self._stray.add(name)
        self._metrics.input_rejected.labels(reason="stray_file").inc()
        # Quoted: any name can be created in HLS_DIR, and one with a newline would forge a log line.
        log.info("ignoring %r: not a file Owncast's playlists use", name)

    def _symlinked_top(self, path: Path) -> Path | None:
        """The entry of HLS_DIR that `path` is (or is under), when that entry is a symlink."""
        try:
            top = self._dir / path.relative_to(self._dir).parts[0]
        except (ValueError, IndexError):
            return None
        return top if top.is_symlink() else None

    def _note_symlink(self, path: Path) -> None:
        name = str(path)
        if name in self._stray or len(self._stray) >= _STRAY_LOG_LIMIT:
            return
        self._stray.add(name)
        self._metrics.input_rejected.labels(reason="symlink").inc()
        log.warning("ignoring %r: a symlink; nothing is read through symlinks", name)
