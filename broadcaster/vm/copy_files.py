"""The copies' folder under STATE_DIR (`segments/`): private, emptied at start, each copy written whole
under a name of ours (a temporary name, then a rename), read at its exact size, never through a symlink;
and how much its disk leaves them above the reserve the state's own saves need."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

FOLDER = "segments"  # under STATE_DIR
DISK_RESERVE = 64 * 1024 * 1024  # left free on STATE_DIR's disk for the state (or a fiftieth if more)
CAP = "VM_COPIES_MB"
DISK = "disk_reserve"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SUFFIX = ".seg"
_TEMP = ".tmp"


class CopyFiles:
    """Written from the uploads' worker threads, read from the event loop's executor."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FOLDER
        self._dir: int | None = None
        self._lock = threading.Lock()
        self._counter = 0

    @property
    def is_open(self) -> bool:
        return self._dir is not None

    def open(self) -> None:
        """Make the folder (private) and empty it."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.path, 0o700)
        fd = os.open(self.path, _DIR_FLAGS)  # a symlink in its place is refused (ELOOP)
        try:
            for name in os.listdir(fd):
                if name.endswith((_SUFFIX, _TEMP)):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=fd)
        except BaseException:
            os.close(fd)
            raise
        self._dir = fd

    def close(self, names: list[str]) -> None:
        """Remove these copies and let the folder go."""
        self.unlink(names)
        fd, self._dir = self._dir, None
        if fd is not None:
            os.close(fd)

    def new_name(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{self._counter:012d}{_SUFFIX}"

    def write(self, name: str, body: bytes) -> None:
        """OSError when it cannot be written (the folder closed included)."""
        fd = self._dir
        if fd is None:
            raise FileNotFoundError(self.path)
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
        os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)

    def read(self, name: str, size: int) -> bytes:
        """Its `size` bytes; FileNotFoundError when it is gone (or not that size)."""
        fd = self._dir
        if fd is None:
            raise FileNotFoundError(name)
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        with os.fdopen(f, "rb") as file:  # reads to size + 1 bytes or the end, however many reads that takes
            data = file.read(size + 1)
        if len(data) != size:
            raise FileNotFoundError(name)
        return data

    def fits(self, size: int) -> tuple[bool, int]:
        """Whether `size` more bytes leave the reserve free (True: cannot tell), and the reserve."""
        fd = self._dir
        if fd is None:
            return True, 0
        try:
            st = os.statvfs(fd)
        except OSError:
            return True, 0  # cannot tell: the write says
        left_free = reserve(st)
        return st.f_bavail * st.f_frsize - size >= left_free, left_free

    def unlink(self, names: list[str]) -> None:
        fd = self._dir
        for name in names if fd is not None else ():
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)


def reserve(st: os.statvfs_result) -> int:
    """The bytes of this disk the copies leave free."""
    return max(DISK_RESERVE, st.f_blocks * st.f_frsize // 50)


def room(folder: Path, kept: int, cap: int) -> tuple[int, str]:
    """The most the copies may take now (`kept` are taken), and what bounds it: CAP, or DISK (the reserve)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return cap, CAP  # cannot tell: the cap is what is known
    disk = kept + max(0, st.f_bavail * st.f_frsize - reserve(st))
    return (disk, DISK) if disk < cap else (cap, CAP)
