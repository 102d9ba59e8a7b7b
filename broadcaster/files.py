"""Reading files beneath a folder so that nothing outside it is ever read (a subfolder may be swapped for a
symlink at any moment: every name is opened with O_NOFOLLOW relative to the folder above it), writing one
whole or setting a damaged one aside, and what an OSError's errno says."""

from __future__ import annotations

import errno
import os
import pwd
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

# Out of file handles or memory: says nothing about the file, so try again later.
TEMPORARY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})
# What O_NOFOLLOW answers for a symlink (ELOOP; ENOTDIR with O_DIRECTORY).
NOT_FOLLOWED_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR})
# The largest media file read (and uploaded) from HLS_DIR: Owncast's segments are a few MB at most.
MAX_FILE_BYTES = 64 * 1024 * 1024
T = TypeVar("T")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer (fstat then refuses it); O_NOCTTY: a terminal
# device must not become ours.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Refused(Exception):
    """Not a file we read: `reason` is "symlink", "not_a_file" or "too_large"; `path` the name refused."""

    def __init__(self, reason: str, detail: str, path: Path) -> None:
        super().__init__(detail)
        self.reason = reason
        self.path = path


def is_temporary(err: OSError) -> bool:
    return err.errno in TEMPORARY_ERRNOS


@dataclass(frozen=True, slots=True)
class Stamp:
    """One version of a file: a file rewritten, replaced or grown since has another stamp."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stamp:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns)


def read_beneath(root: Path, parts: Sequence[str], max_bytes: int) -> bytes:
    """The bytes of root/parts[0]/.../parts[-1], a regular file of at most `max_bytes`."""
    return read_stamped(root, parts, max_bytes)[0]


def read_stamped(root: Path, parts: Sequence[str], max_bytes: int) -> tuple[bytes, Stamp | None]:
    """read_beneath, and the stamp of the version read: None when the file changed while it was read."""
    fd = _open_beneath(root, parts)
    try:
        before = Stamp.of(os.fstat(fd))
        data = read_open(fd, root.joinpath(*parts), max_bytes)
        after = Stamp.of(os.fstat(fd))
        return data, after if after == before and after.size == len(data) else None
    finally:
        os.close(fd)


def stamp_beneath(root: Path, parts: Sequence[str]) -> Stamp | None:
    """The stamp of root/parts..., opened as read_beneath opens it; None when gone."""
    look = look_beneath(root, parts, lambda _fd, _path: None)
    return None if look is None else look[0]


def look_beneath(root: Path, parts: Sequence[str], ask: Callable[[int, Path], T]) -> tuple[Stamp, T] | None:
    """stamp_beneath, and what `ask` says of the regular file while it is open (read-only, as `fd`)."""
    try:
        fd = _open_beneath(root, parts)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        path = root.joinpath(*parts)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not_a_file", f"{path} is not a regular file", path)
        return Stamp.of(st), ask(fd, path)
    finally:
        os.close(fd)


def _open_beneath(root: Path, parts: Sequence[str]) -> int:
    """A descriptor of root/parts..., every name below root opened without following a symlink."""
    if not parts or any(p in ("", ".", "..") or "/" in p for p in parts):
        raise Refused("not_a_file", f"{'/'.join(parts)!r} is not a plain path inside {root}", root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, name in enumerate(parts):
            last = depth == len(parts) - 1
            shown = root.joinpath(*parts[: depth + 1])
            child = _open_at(fd, name, _FILE_FLAGS if last else _DIR_FLAGS, shown)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_open(fd: int, path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file open as `fd`, at most `max_bytes` of them; the caller closes `fd`."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise Refused("not_a_file", f"{path} is not a regular file", path)
    if st.st_size > max_bytes:
        raise Refused("too_large", f"{path} is {st.st_size} bytes, over the {max_bytes} byte limit", path)
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:  # the file may grow after fstat: read at most one byte too many
        # Ask for what fstat announced (os.read allocates what it is asked for), then small steps.
        want = st.st_size + 1 - size if size < st.st_size else 64 * 1024
        chunk = os.read(fd, min(want, max_bytes + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > max_bytes:
        raise Refused("too_large", f"{path} is larger than the {max_bytes} byte limit", path)
    return b"".join(chunks)


def _open_at(dir_fd: int, name: str, flags: int, shown: Path) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in NOT_FOLLOWED_ERRNOS:
            try:
                link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                link = err.errno == errno.ELOOP
            if link:
                raise Refused("symlink", f"{shown} is a symlink; not followed", shown) from err
            kind = "folder" if flags & os.O_DIRECTORY else "regular file"
            raise Refused("not_a_file", f"{shown} is not a {kind}", shown) from err
        raise


def write_whole(path: Path, body: bytes) -> None:
    """`body` as the whole of `path` (written beside it, renamed over it), its folder made if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_bytes(body)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def set_aside(path: Path, kind: str) -> Path:
    """Move a damaged file to `<name>.<kind>-<time>` beside it (never over another); where it went."""
    stem = f"{path.name}.{kind}-{time.strftime('%Y%m%dT%H%M%S')}"
    aside = path.with_name(stem)
    for n in range(2, 100):
        if not os.path.lexists(aside):
            break
        aside = path.with_name(f"{stem}-{n}")
    os.replace(path, aside)
    return aside


def user_name() -> str:
    """Who this process runs as, by name where there is one."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def closed_folder(path: Path) -> Path | None:
    """The first folder on the way to `path` this user cannot enter; None too where one is missing."""
    for folder in reversed(path.absolute().parents):
        if not os.access(folder, os.X_OK):
            return folder if os.path.lexists(folder) else None
    return None
