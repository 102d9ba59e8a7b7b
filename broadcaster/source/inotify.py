"""Linux inotify read on the event loop: the kernel wakes the loop when a file is written, nothing polls
(watchfiles' polling costs 3 % of a core at 1 ms). Through ctypes: three libc calls, no dependency.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = 0o2000000

# A file is read when its writer closes it or it is moved in; in a variant folder, made and written are
# heard too, for writes.Writes.
ROOT_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF
VARIANT_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF
READ_MASK = IN_CLOSE_WRITE | IN_MOVED_TO  # "read this file" (IN_CREATE too, in the top folder only)
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name
_READ_BYTES = 64 * 1024


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's, without a search
        libc.inotify_init1, libc.inotify_add_watch  # noqa: B018  (present, or AttributeError)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


@dataclass(frozen=True, slots=True)
class Event:
    path: Path  # the file or folder the event is about (the watched folder itself for self events)
    mask: int


class FolderWatch:
    """inotify on `root` and each folder directly in it, added as they appear (never through a symlink)."""

    def __init__(self, root: Path) -> None:
        if _LIBC is None:
            raise OSError(errno.ENOSYS, "inotify is not available here")
        self.root = root
        self._fd: int = _LIBC.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise _error("inotify_init1", root)
        self._paths: dict[int, Path] = {}
        try:
            self._root_wd = self._add(root, ROOT_MASK)
            with os.scandir(root) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        self._add_quietly(Path(entry.path))
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FolderWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def read(self) -> list[Event]:
        """Every event waiting; an IN_Q_OVERFLOW event means some were lost."""
        events: list[Event] = []
        while True:
            try:
                data = os.read(self._fd, _READ_BYTES)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                name = data[offset:offset + size].rstrip(b"\0")
                offset += size
                self._event(events, wd, mask, os.fsdecode(name))

    def _event(self, events: list[Event], wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            events.append(Event(self.root, IN_Q_OVERFLOW))
            return
        folder = self._paths.get(wd)
        if folder is None:
            return
        if mask & IN_IGNORED:  # the watch is gone (its folder deleted or moved away)
            del self._paths[wd]
            if wd == self._root_wd:
                events.append(Event(self.root, IN_DELETE_SELF))
            return
        path = folder / name if name else folder
        if wd == self._root_wd and mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
            self._add_quietly(path)
        events.append(Event(path, mask))

    def _add(self, path: Path, mask: int) -> int:
        assert _LIBC is not None
        mask |= IN_ONLYDIR | IN_DONT_FOLLOW
        wd: int = _LIBC.inotify_add_watch(self._fd, os.fsencode(path), ctypes.c_uint32(mask))
        if wd < 0:
            raise _error("inotify_add_watch", path)
        self._paths[wd] = path
        return wd

    def _add_quietly(self, path: Path) -> None:
        """A variant folder: gone again or a symlink by now is no error (its events do not matter)."""
        try:
            self._add(path, VARIANT_MASK)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise


def _error(call: str, path: Path) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{call} on {path}: {os.strerror(code)}")
