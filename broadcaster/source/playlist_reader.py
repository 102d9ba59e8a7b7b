"""Owncast's playlists read, parsed and handed on: only the variants the multivariant playlist names, only
regular files beneath HLS_DIR, never through a symlink; a playlist unchanged since its last read is not
parsed again."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..files import Refused, is_temporary, read_beneath
from ..lograte import RateLimitedLog
from .notices import InputNotices
from .owncast import (
    MASTER_PLAYLIST,
    MAX_PLAYLIST_ENTRIES,
    VARIANT_PLAYLIST,
    PlaylistError,
    SourcePlaylist,
    SourceVariant,
    parse_master_playlist,
    parse_media_playlist,
)
from .writes import Writes

log = logging.getLogger(__name__)

VARIANT_DIR = re.compile(r"[0-9]{1,3}")  # ASCII: \d takes any script's digits
# Owncast's playlists are a few KB; this holds MAX_PLAYLIST_ENTRIES long entries and parses in under 0.1 s.
MAX_PLAYLIST_BYTES = 256 * 1024
# After Owncast wiped its folder, a variant playlist waits this long at most for the new multivariant
# playlist, so a variant the new stream adds is listed from its first segment like the others.
NEW_MASTER_WAIT = 5.0


class PlaylistSink(Protocol):
    def on_master(self, variants: list[SourceVariant]) -> None: ...
    def on_variant_playlist(self, index: int, playlist: SourcePlaylist) -> None: ...


def read_playlist(root: Path, parts: tuple[str, ...]) -> str:
    """Read root/parts..., a regular file, through no symlink; raises OSError, Refused or PlaylistError."""
    try:
        data = read_beneath(root, parts, MAX_PLAYLIST_BYTES)
    except Refused as err:
        if err.reason == "too_large":
            raise PlaylistError(f"larger than {MAX_PLAYLIST_BYTES} bytes") from err
        raise
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PlaylistError("not UTF-8 text") from err


class PlaylistReader:
    """`retry(path, err)`: read `path` (None: scan) again shortly, out of file handles."""

    def __init__(self, hls_dir: Path, sink: PlaylistSink, notes: InputNotices, writes: Writes,
                 retry: Callable[[Path | None, OSError], None], new_master_wait: float = NEW_MASTER_WAIT) -> None:
        self._dir = hls_dir
        self._sink = sink
        self._notes = notes
        self.writes = writes
        self._read_later = retry
        self._new_master_wait = new_master_wait
        self._last_text: dict[Path, str] = {}
        # The variant folders the last good multivariant playlist names (kept across a wipe); None: none yet.
        self.variants: frozenset[int] | None = None
        self._master_gone_at: float | None = None  # monotonic: a variant's read found no master (a wipe)
        self._held: set[int] = set()  # variants whose playlist waits for the new master
        self._errors = RateLimitedLog(log)

    def read(self, path: Path, quiet: bool = False) -> bool:
        """Read, parse and hand on one playlist; True when it is good (or unchanged and was good)."""
        try:
            return self._read_unsafely(path, quiet)
        except Exception as err:  # a FIFO once made this kill the watch for good
            self._errors.error("read", "reading %s failed: %r; carrying on", path, err)
            return False

    def _read_unsafely(self, path: Path, quiet: bool) -> bool:
        kind = self._classify(path)
        if kind is None:
            self._notes.note_stray(path)
            return False
        if isinstance(kind, int) and kind not in (self.variants or ()):
            if self.variants is None:
                self._notes.note_orphan(path)
            return False  # not a variant (yet): the master names them, and a scan notes the folder
        if isinstance(kind, int) and self._awaiting_master(kind):
            return False  # read again with the new master (_use_variants), or by a later event or scan
        try:
            text = read_playlist(self._dir, path.relative_to(self._dir).parts)
            if self._last_text.get(path) == text:
                if not isinstance(kind, int) and self._held:  # the same master again, after a wipe
                    self._use_variants(self.variants or frozenset(), quiet)
                return True
            if isinstance(kind, int):
                playlist = parse_media_playlist(text)
            else:
                variants = parse_master_playlist(text)
        except FileNotFoundError:
            return False
        except Refused as err:
            if err.path != path and err.reason == "symlink":  # the variant folder itself
                self._notes.note_symlink(err.path)
            elif err.path != path:
                self._notes.note_bad(path, str(err), quiet, sure=True)
            else:
                why = "a symlink; not followed" if err.reason == "symlink" else "not a regular file"
                self._notes.note_bad(path, why, quiet, sure=True)
            return False
        except OSError as err:
            if is_temporary(err):  # out of file handles: says nothing about the file
                self._read_later(path, err)
            else:
                self._notes.note_bad(path, str(err), quiet)
            return False
        except PlaylistError as err:
            self._notes.note_bad(path, str(err), quiet)  # usually half-written: the next event reads it again
            return False
        if isinstance(kind, int) and playlist.skipped:
            self._errors.info(f"entries:{path}", "taking only the newest %d of the %d entries in %s",
                              MAX_PLAYLIST_ENTRIES, MAX_PLAYLIST_ENTRIES + playlist.skipped, path)
        try:
            if isinstance(kind, int):
                self._name_durations(kind, playlist)
                self._sink.on_variant_playlist(kind, playlist)
            else:
                self._sink.on_master(variants)
        except Exception:  # a bug of ours must not stop the watch; say so loudly, once per version
            log.exception("handling %s failed", path)
        self._last_text[path] = text
        self._notes.read_well(path)
        if not isinstance(kind, int):
            self._use_variants(frozenset(v.index for v in variants), quiet)
        return True

    def _name_durations(self, index: int, playlist: SourcePlaylist) -> None:
        """Each MPEG-TS segment's #EXTINF, told to `writes` (not the offline clip's: not its length)."""
        folder = self._dir / str(index)
        for segment in playlist.segments:
            if segment.name.endswith(".ts") and not segment.is_offline_clip:
                self.writes.named(folder / segment.name, segment.duration)

    def _use_variants(self, indices: frozenset[int], quiet: bool) -> None:
        self._notes.clear_orphan()
        new = indices - (self.variants or frozenset())
        self.variants = indices
        waiting, self._held = self._held & indices, set()
        self._master_gone_at = None
        for index in sorted(new | waiting):  # their playlists came first (ffmpeg writes the master last)
            self.read(self._dir / str(index) / VARIANT_PLAYLIST, quiet)

    def _awaiting_master(self, index: int) -> bool:
        """The master is gone (a wipe): the variant's playlist waits for it, NEW_MASTER_WAIT at most."""
        if (self._dir / MASTER_PLAYLIST).exists():
            return False
        now = time.monotonic()
        if self._master_gone_at is None:
            self._master_gone_at = now
        if now - self._master_gone_at >= self._new_master_wait:
            return False
        self._held.add(index)
        return True

    def _classify(self, path: Path) -> str | int | None:
        try:
            rel = path.relative_to(self._dir)
        except ValueError:
            return None
        parts = rel.parts
        if parts == (MASTER_PLAYLIST,):
            return "master"
        if len(parts) == 2 and VARIANT_DIR.fullmatch(parts[0]) and parts[1] == VARIANT_PLAYLIST:
            return int(parts[0]) if parts[0] == str(int(parts[0])) else None
        return None
