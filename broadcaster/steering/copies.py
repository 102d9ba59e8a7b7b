"""Copies: the VM's own copy of each finished segment, for the VM's pathway (Owncast deletes its files
soon after it lists them; a viewer steered here may ask for any segment the window and rewind list).

On disk, in a folder of its own under STATE_DIR (a 4 h rewind of three variants is gigabytes): one
file per segment, written under a name of ours (a counter), never one taken from a URL or from Owncast;
a key is found in an index kept in memory. Bounded in bytes (oldest first) and in age (a segment's
whole life in the playlists, Settings.segment_url_life); an fMP4 init section, kept once per transcoder
run but listed with each of its segments, lives as long as the last segment kept after it in its folder.
The folder is emptied at start (what a former run kept is not in its index) and at a clean stop. A copy
is served only once a VM playlist listed it (`listed`): kept but never listed (a slot dropped) is never
served.

Written from the uploader's worker threads (the bytes it read once, off the event loop), read by the
event loop (the index) and its executor (the bytes): the index is behind a lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..lograte import RateLimitedLog
from ..playlist import hls

log = logging.getLogger(__name__)

FOLDER = "segments"  # under STATE_DIR
# The copies never take the last of STATE_DIR's disk: the state must still be saved (numbers served,
# docs/hls-rules.md#numbers-across-restarts). This much stays free, or a fiftieth of the disk if more;
# past it the oldest copies go, then new ones are not kept.
DISK_RESERVE = 64 * 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SUFFIX = ".seg"
_TEMP = ".tmp"


@dataclass(frozen=True, slots=True)
class Copy:
    """One segment's copy: what an answer needs without reading it."""

    key: str
    name: str  # its file in the folder
    size: int
    etag: str  # strong: a digest of the bytes
    modified: float  # Unix seconds (Last-Modified): when it was kept
    content_type: str
    kept_at: float  # monotonic
    listed: bool = False  # a VM playlist listed it: servable


class Copies:
    def __init__(self, state_dir: Path, *, max_bytes: int, keep_for: float,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._path = state_dir / FOLDER
        self.max_bytes = max_bytes
        self._keep_for = keep_for
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._index: OrderedDict[str, Copy] = OrderedDict()  # oldest first
        self._inits: dict[str, str] = {}  # folder (a variant's) -> the init section kept last there
        self._bytes = 0
        self._counter = 0
        self._dir: int | None = None
        self._failed = RateLimitedLog(log)
        self.kept = 0  # copies made (a metric)
        self.failures = 0  # copies that could not be written (disk full...): the VM cannot serve those
        self.evicted = 0  # copies dropped for the byte cap before their time was up

    @property
    def folder(self) -> Path:
        return self._path

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._index)

    # -- life ---------------------------------------------------------------------------------------

    def open(self) -> None:
        """Make the folder (private) and empty it: a former run's files are not in the index."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(self._path, 0o700)
        fd = os.open(self._path, _DIR_FLAGS)  # a symlink in its place is refused (ELOOP)
        try:
            for name in os.listdir(fd):
                if name.endswith((_SUFFIX, _TEMP)):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=fd)
        except BaseException:
            os.close(fd)
            raise
        self._dir = fd

    def close(self) -> None:
        """Remove every copy (a restart starts empty anyway) and let the folder go."""
        with self._lock:
            fd, self._dir = self._dir, None
            names = [c.name for c in self._index.values()]
            self._index.clear()
            self._inits.clear()
            self._bytes = 0
        if fd is None:
            return
        try:
            for name in names:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    # -- written from the uploader's threads ------------------------------------------------------------

    def keep(self, key: str, body: bytes) -> Copy | None:
        """Keep `body` as `key`'s copy (a key kept again is replaced: Owncast rewrote the file). None when
        it could not be written (one line per 30 s, counted): the VM's pathway cannot serve it."""
        content_type = hls.segment_content_type(key)
        fd = self._dir
        if content_type is None or fd is None or not body:
            return None
        if len(body) > self.max_bytes:
            self._failed.warning("large", "cannot keep a copy of %s: %d bytes is more than VM_COPIES_MB allows",
                                 key, len(body))
            self.failures += 1
            return None
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        if not self._room(fd, len(body)):
            self.failures += 1
            self._failed.warning("full", "STATE_DIR's disk (%s) is nearly full: the VM keeps no more segment "
                                 "copies (its pathway cannot serve %s) so that the state can still be saved",
                                 self._path, key)
            return None
        with self._lock:
            self._counter += 1
            name = f"{self._counter:012d}{_SUFFIX}"
        try:
            self._write(fd, name, body)
        except OSError as err:
            self.failures += 1
            self._failed.warning("write", "cannot keep a copy of %s in %s (%s): the VM's pathway cannot serve "
                                 "it", key, self._path, err.strerror or err)
            return None
        copy = Copy(key, name, len(body), etag, float(int(self._wall())), content_type, self._clock())
        gone: list[str] = []
        with self._lock:
            if self._dir is None:  # closed meanwhile
                gone.append(name)
            else:
                old = self._index.pop(key, None)
                if old is not None:
                    self._bytes -= old.size
                    gone.append(old.name)
                    copy = replace(copy, listed=old.listed)
                    if old.etag != etag:
                        log.warning("the VM's copy of %s was replaced by other bytes (Owncast rewrote the file)", key)
                self._index[key] = copy
                self._bytes += copy.size
                self.kept += 1
                self._renew_init_locked(key)
                gone += self._expire_locked()
        self._unlink(fd, gone)
        return copy

    def _renew_init_locked(self, key: str) -> None:
        """A segment kept: the init section its run kept last in its folder lives on with it (its run's
        segments list it), the newest again (the byte cap takes the segments before it)."""
        folder = key.rpartition("/")[0]
        if hls.is_init_section(key):
            self._inits[folder] = key
            return
        init = self._inits.get(folder)
        copy = self._index.get(init) if init is not None else None
        if init is not None and copy is not None:
            self._index[init] = replace(copy, kept_at=self._clock())
            self._index.move_to_end(init)

    def _room(self, fd: int, size: int) -> bool:
        """Room for `size` more bytes with DISK_RESERVE left free, the oldest copies dropped for it."""
        while True:
            try:
                st = os.statvfs(fd)
            except OSError:
                return True  # cannot tell: the write says
            reserve = max(DISK_RESERVE, st.f_blocks * st.f_frsize // 50)
            if st.f_bavail * st.f_frsize - size >= reserve:
                return True
            with self._lock:
                if not self._index:
                    return False
                _, oldest = self._index.popitem(last=False)
                self._bytes -= oldest.size
                self.evicted += 1
            with contextlib.suppress(OSError):
                os.unlink(oldest.name, dir_fd=fd)

    def _write(self, fd: int, name: str, body: bytes) -> None:
        temp = name + _TEMP
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(out, view):]
        except BaseException:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=fd)
            raise
        os.close(out)
        os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)  # a reader sees the whole file or none

    def _expire_locked(self) -> list[str]:
        """Drop copies past their time, then the oldest while over the byte cap; their file names."""
        gone = []
        now = self._clock()
        index = self._index
        while index:
            key, oldest = next(iter(index.items()))
            over = self._bytes > self.max_bytes
            if not over and now - oldest.kept_at <= self._keep_for:
                break
            del index[key]
            self._bytes -= oldest.size
            gone.append(oldest.name)
            if over and now - oldest.kept_at <= self._keep_for:
                self.evicted += 1
                self._failed.warning("evicted", "the VM's copies exceed VM_COPIES_MB: %s dropped before the "
                                     "playlists are done with it (raise VM_COPIES_MB for the rewind window)", key)
        return gone

    def _unlink(self, fd: int, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)

    # -- read by the event loop ---------------------------------------------------------------------------

    def listed(self, key: str) -> None:
        """A VM playlist lists `key`: its copy may be served from now on."""
        with self._lock:
            copy = self._index.get(key)
            if copy is not None and not copy.listed:
                self._index[key] = replace(copy, listed=True)

    def get(self, key: str) -> Copy | None:
        with self._lock:
            return self._index.get(key)

    def servable(self, key: str) -> Copy | None:
        """`key`'s copy when a VM playlist listed it, else None."""
        copy = self.get(key)
        return copy if copy is not None and copy.listed else None

    def read_kept(self, key: str) -> bytes | None:
        """`key`'s copy (blocking: run it in a thread), None when there is none (any more): what its upload
        sends, so the bucket gets the very bytes the VM serves."""
        copy = self.get(key)
        if copy is None:
            return None
        try:
            return self.read(copy)
        except (FileNotFoundError, OSError):
            return None

    def read(self, copy: Copy) -> bytes:
        """The copy's bytes (blocking: run it in a thread). FileNotFoundError once it was dropped."""
        fd = self._dir
        if fd is None:
            raise FileNotFoundError(copy.name)
        f = os.open(copy.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        try:
            data = os.read(f, copy.size + 1)
            while len(data) < copy.size:
                more = os.read(f, copy.size + 1 - len(data))
                if not more:
                    break
                data += more
        finally:
            os.close(f)
        if len(data) != copy.size:
            raise FileNotFoundError(copy.name)  # replaced or cut: not the bytes its ETag names
        return data
