"""Held: the segments the service holds for its pathways (one version of Owncast's file each, by its stamp),
and the copies kept of some once an upload fails, until every bucket has them: Owncast deletes a segment
soon after listing it. The copies are bounded (VM_COPIES_MB, and the disk's reserve), oldest first."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..files import MAX_FILE_BYTES, Refused, Stamp, look_beneath, read_stamped, stamp_beneath
from ..lograte import RateLimitedLog
from ..playlist import hls
from .copy_files import DISK_RESERVE as DISK_RESERVE, FOLDER as FOLDER, CopyFiles, room
from .held_index import SETTLED_FOR as SETTLED_FOR, HeldFile as HeldFile, HeldIndex

log = logging.getLogger(__name__)

_new = tuple.__new__


class Held:
    """`buckets`: the pathway IDs of the buckets every upload goes to (a copy goes once all have it)."""

    def __init__(self, hls_dir: Path, state_dir: Path, *, max_bytes: int, keep_for: float,
                 buckets: Iterable[str] = (hls.BUCKET_PATHWAY,), clock: Callable[[], float] = time.monotonic,
                 writers: Callable[[int, Path], bool | None] = lambda fd, path: None) -> None:
        """`writers(fd, path)`: whether that file is open for writing anywhere (None: cannot tell)."""
        self._root = hls_dir
        self._files = CopyFiles(state_dir)  # the copies' folder
        self.max_bytes = max_bytes
        self._clock = clock
        self._writers = writers
        self._lock = threading.Lock()
        self._index = HeldIndex(keep_for, buckets)  # under the lock
        self._failed = RateLimitedLog(log)
        self.kept = 0  # copies made (a metric)
        self.failures = 0  # copies that could not be written (disk full...)

    @property
    def folder(self) -> Path:
        return self._files.path

    @property
    def total_bytes(self) -> int:
        """The copies' bytes on disk."""
        return self._index.bytes

    @property
    def evicted(self) -> int:
        """Copies dropped for the byte cap before every bucket had them (a metric)."""
        return self._index.evicted

    def room(self) -> tuple[int, str]:
        """The bytes the copies may take now, and what bounds them (copy_files.room)."""
        return room(self.folder, self._index.bytes, self.max_bytes)

    @property
    def copies(self) -> int:
        return len(self._index.copies)

    def __len__(self) -> int:
        return len(self._index.files)

    def open(self) -> None:
        """Make the copies' folder (private) and empty it: a former run's copies are not in the index."""
        self._files.open()

    def close(self) -> None:
        """Remove every copy (a restart reads Owncast's files again) and let the folder go."""
        with self._lock:
            names = self._index.clear()
        self._files.close(names)

    def first(self, key: str, parts: tuple[str, ...], stamp: Stamp,
              content_type: str | None = None) -> HeldFile | None:
        """The first read of `key`'s file was this version: held from now on (or the one held already)."""
        if (content_type := content_type or hls.segment_content_type(key)) is None:
            return None
        now = self._clock()
        # tuple.__new__: a HeldFile without the NamedTuple's Python-level __new__ (one per segment).
        held = _new(HeldFile, (key, parts, stamp, stamp.size, stamp.mtime_ns // 1_000_000_000, content_type, now,
                               None, 0))
        gone: list[str] = []
        with self._lock:
            held = self._index.put(held, now, gone)  # or the version held already, with its copy
        self._files.unlink(gone)
        return held

    def body(self, key: str) -> bytes | None:
        """`key`'s bytes (blocking): its copy, or Owncast's file while it is the version read; else None."""
        return got[0] if (got := self.held_body(key)) is not None else None

    def held_body(self, key: str) -> tuple[bytes, Stamp] | None:
        """As `body`, with the held version's stamp."""
        if (held := self.get(key)) is None:
            return None
        try:
            return self.read(held), held.stamp
        except (FileNotFoundError, Refused, OSError):
            return None

    def keep(self, key: str, body: bytes) -> bool:
        """An upload of `key` failed: keep `body` until every bucket has it; True once a copy is kept."""
        if (held := self.get(key)) is None or not self._files.is_open or not body or len(body) != held.size:
            return False
        if held.copy is not None:
            return True
        if len(body) > self.max_bytes:
            self._failed.warning("large", "cannot keep a copy of %s: %d bytes is more than VM_COPIES_MB allows",
                                 key, len(body))
            self.failures += 1
            return False
        while not (fits := self._files.fits(len(body)))[0]:  # the disk's reserve kept free: oldest copies go
            with self._lock:
                oldest = self._index.drop_oldest_copy()
            if oldest is None or oldest.copy is None:
                self.failures += 1
                self._failed.warning(
                    "full", "STATE_DIR's disk (%s) is nearly full: no copy of %s is kept (its upload reads "
                    "Owncast's file while it is there) so that the state can still be saved",
                    self._files.path, key)
                return False
            self._failed.warning(
                "reserve", "STATE_DIR's disk is down to its reserve (%d MB): the oldest copy of a segment "
                "not in every bucket yet dropped (its upload reads Owncast's file while it is there); free "
                "space on STATE_DIR's disk for a longer outage", fits[1] // (1024 * 1024))
            self._files.unlink([oldest.copy])
        name = self._files.new_name()
        try:
            self._files.write(name, body)
        except OSError as err:
            self.failures += 1
            self._failed.warning("write", "cannot keep a copy of %s in %s (%s)", key, self._files.path, err.strerror or err)
            return False
        gone: list[str] = []
        with self._lock:
            if not self._files.is_open or not self._index.copied(held, name, len(body)):
                gone.append(name)  # closed, forgotten, rewritten or kept meanwhile
            else:
                self.kept += 1
                while (self._index.bytes > self.max_bytes
                       and (dropped := self._index.drop_oldest_copy()) is not None):
                    if dropped.copy is not None:  # over the cap: the oldest copies go
                        gone.append(dropped.copy)
                        self._failed.warning(
                            "evicted", "the copies of segments not in every bucket yet exceed VM_COPIES_MB: "
                            "%s dropped (its upload reads Owncast's file while it is there; raise "
                            "VM_COPIES_MB for a longer outage)", dropped.key)
        self._files.unlink(gone)
        return not gone or gone[0] != name

    def landed(self, key: str, bucket: str) -> None:
        """`bucket` has `key`: once every bucket has it, its copy (if any) goes."""
        with self._lock:
            name = self._index.landed(key, bucket, self._clock())
        if name is not None:
            self._files.unlink([name])

    def get(self, key: str) -> HeldFile | None:
        with self._lock:
            return self._index.files.get(key)

    def alive(self, key: str) -> bool:
        """A version of `key` may still be read: its copy is kept, or Owncast's file is there (a stat)."""
        if (held := self.get(key)) is None:
            return False
        if held.copy is not None:
            return True
        try:
            return stamp_beneath(self._root, held.parts) is not None
        except (OSError, Refused):
            return False

    def at_hand(self, key: str, parts: tuple[str, ...]) -> HeldFile | None:
        """What the VM answers for `key` now: Owncast's file as it is, held from now on, or the copy."""
        held = self.get(key)
        if held is not None:
            parts = held.parts
        kept = held if held is not None and held.copy is not None else None  # outlives Owncast's file
        try:
            stamp = stamp_beneath(self._root, parts)
            if stamp is None or stamp.size <= 0:  # gone (or not a file we serve)
                return kept
            if held is not None and held.stamp == stamp:
                return held
            look = look_beneath(self._root, parts, self._writers)  # held unless a writer has it open
        except (OSError, Refused):
            return kept
        return self.first(key, parts, look[0]) if look and look[1] is not True and look[0].size > 0 else kept

    def hold_kept(self, key: str, parts: tuple[str, ...], stamp: Stamp, body: bytes,
                  content_type: str | None = None) -> bool:
        """An upload that held nothing first failed: the version it sent held, and kept as `keep` does."""
        return self.first(key, parts, stamp, content_type) is not None and self.keep(key, body)

    def read(self, held: HeldFile) -> bytes:
        """Its bytes (blocking): the copy, or Owncast's file while it is that version (FileNotFoundError)."""
        if held.copy is not None:
            with contextlib.suppress(FileNotFoundError):
                return self._files.read(held.copy, held.size)
        data, stamp = read_stamped(self._root, held.parts, MAX_FILE_BYTES)
        if stamp != held.stamp or len(data) != held.size:
            raise FileNotFoundError(held.key)  # another version now: not the bytes its ETag names
        return data
