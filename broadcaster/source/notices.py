"""What the watcher tells the operator about HLS_DIR: playlists it cannot use, files that are not
Owncast's, symlinks, and a stream without a multivariant playlist; each cause logged once and counted.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..metrics import Metrics
from .owncast import MASTER_PLAYLIST

log = logging.getLogger("broadcaster.source.watcher")  # the watcher's lines

_STRAY_LOG_LIMIT = 1000
_QUIET_STRIKES = 3  # a playlist failing quiet rescans this many times in a row is broken


def _fingerprint(path: Path) -> tuple[int, int] | None:
    """Size and modification time (of a symlink itself): any write in place changes them."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class InputNotices:
    """One watcher's notes on HLS_DIR, each cause told once. One event loop's: not thread-safe."""

    def __init__(self, hls_dir: Path, metrics: Metrics, master_grace: float) -> None:
        self._dir = hls_dir
        self._metrics = metrics
        self._master_grace = master_grace
        self.bad: dict[Path, str] = {}  # playlists that failed to parse, with the error, logged once
        # Failed quiet rescans not yet warned about: (error, file fingerprint, how many in a row).
        self._suspect: dict[Path, tuple[str, tuple[int, int] | None, int]] = {}
        self._stray: set[str] = set()
        self._orphan_since: float | None = None  # since when a variant playlist went without a master
        self._orphan: Path | None = None
        self._orphan_warned = False

    def read_well(self, path: Path) -> None:
        """`path` was read and used: whatever was noted about it is over."""
        self.bad.pop(path, None)
        self._suspect.pop(path, None)

    def master_missing(self) -> str | None:
        """Why nothing can be served: a variant playlist without a multivariant one for MASTER_GRACE s."""
        since = self._orphan_since
        if since is None or time.monotonic() - since < self._master_grace:
            return None
        master = self._dir / MASTER_PLAYLIST
        why = self.bad.get(master)
        state = f"unreadable ({why.split(':', 1)[1]})" if why else "missing"
        reason = (f"Owncast writes {self._orphan} but its multivariant playlist {master} is {state} "
                  f"since {time.monotonic() - since:.0f}s: players cannot start")
        if not self._orphan_warned:
            self._orphan_warned = True
            self._metrics.master_missing.set(1)
            log.warning("%s (nothing is served until it can be read)", reason)
        return reason

    def note_orphan(self, path: Path) -> None:
        if self._orphan_since is None:
            self._orphan_since, self._orphan = time.monotonic(), path

    def clear_orphan(self) -> None:
        if self._orphan_since is not None and self._orphan_warned:
            log.info("multivariant playlist %s read: serving the stream", self._dir / MASTER_PLAYLIST)
        self._orphan_since = self._orphan = None
        self._orphan_warned = False
        self._metrics.master_missing.set(0)

    def note_bad(self, path: Path, why: str, quiet: bool, *, sure: bool = False) -> None:
        # Half-written playlists are normal while Owncast writes; one still broken when quiet is not.
        # `sure`: broken whenever it is read (a FIFO, a symlink), nothing a rewrite can finish.
        key = f"sure:{why}" if sure else f"{'quiet' if quiet else 'busy'}:{why}"
        if self.bad.get(path) == key or (not quiet and not sure and path in self.bad):
            return
        if quiet and not sure:
            # A quiet rescan can still land in a rewrite: broken if the next one finds the same file
            # (unchanged) broken the same way, or the same error _QUIET_STRIKES times in a row.
            fingerprint = _fingerprint(path)
            last = self._suspect.get(path)
            strikes = last[2] + 1 if last is not None and last[0] == why else 1
            self._suspect[path] = (why, fingerprint, strikes)
            unchanged = last is not None and last[0] == why and last[1] == fingerprint
            if not unchanged and strikes < _QUIET_STRIKES:
                log.debug("not using %s yet: %s (checking again when quiet)", path, why)
                return
        self.bad[path] = key
        if quiet or sure:
            self._metrics.input_rejected.labels(reason="bad_playlist").inc()
            log.warning("ignoring %s: %s", path, why)
        else:
            log.debug("not using %s yet: %s", path, why)

    def note_stray(self, path: Path) -> None:
        top = self._symlinked_top(path)
        if top is not None:  # inotify follows a symlink that was there when the watch began
            self.note_symlink(top)
            return
        if self._first(path, "stray_file"):
            # Quoted: any name can be created in HLS_DIR, and one with a newline would forge a log line.
            log.info("ignoring %r: not a file Owncast's playlists use", str(path))

    def note_unnamed(self, path: Path) -> None:
        if self._first(path, "not_a_variant"):
            log.info("ignoring %r: not a variant (%s does not list it)", str(path), self._dir / MASTER_PLAYLIST)

    def _first(self, path: Path, reason: str) -> bool:
        """Counted and logged once per name, up to _STRAY_LOG_LIMIT names (any name can be made there)."""
        name = str(path)
        if name in self._stray or len(self._stray) >= _STRAY_LOG_LIMIT:
            return False
        self._stray.add(name)
        self._metrics.input_rejected.labels(reason=reason).inc()
        return True

    def _symlinked_top(self, path: Path) -> Path | None:
        """The entry of HLS_DIR that `path` is (or is under), when that entry is a symlink."""
        try:
            top = self._dir / path.relative_to(self._dir).parts[0]
        except (ValueError, IndexError):
            return None
        return top if top.is_symlink() else None

    def note_symlink(self, path: Path) -> None:
        if self._first(path, "symlink"):
            log.warning("ignoring %r: a symlink; nothing is read through symlinks", str(path))
