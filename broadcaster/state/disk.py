"""What the service remembers across restarts, in one JSON file in STATE_DIR, written atomically. A file
that is corrupt or foreign is moved aside and reported, never a crash loop."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import files
from ..numbers import whole_number
from ..tails import Tail
from .validate import describe

log = logging.getLogger(__name__)

FORMAT = "hls-broadcaster/state"
VERSION = 1
MAX_BYTES = 256 << 20  # far above what the service writes (tens of MB at most), yet a bound


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """The cyclic collector paused: over a restore's many lasting objects it costs more than the restore."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def header() -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "saved_at": time.time()}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number the service writes")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def loads(text: str | bytes) -> Any:
    """JSON as the service wrote it: NaN, Infinity and 1e400 are refused (ValueError)."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite)


def read_capped(path: Path) -> bytes | None:
    """A state file's bytes, None when there is none; ValueError saying why it cannot be read. A regular
    file only (opened without blocking: a FIFO would wait for ever), never past MAX_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            return files.read_open(fd, path, MAX_BYTES)
        finally:
            os.close(fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ValueError(f"cannot read it: {err.strerror or err}") from None
    except files.Refused as err:
        too_large = f"too large: more than {MAX_BYTES >> 20} MB"
        raise ValueError(too_large if err.reason == "too_large" else "not a regular file") from None


class DirectoryLock:
    """STATE_DIR/lock, held with flock(2) while the service runs: even kill -9 leaves no stale lock."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises DirectoryBusy (held by another process) or OSError (cannot open the lock file)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DirectoryBusy(holder if whole_number(holder) is not None else None) from None
        except BaseException:
            os.close(fd)
            raise
        # The pid is for the operator; a full STATE_DIR must not stop start-up for it.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class DirectoryBusy(Exception):
    def __init__(self, pid: str | None) -> None:
        super().__init__(pid)
        self.pid = pid


@dataclass(frozen=True, slots=True)
class RawJSON:
    """JSON encoded already (each entry when listed), written as it is: not a window of hours at each save."""

    text: str

    def decode(self) -> Any:
        return loads(self.text)


class Replaced(OSError):
    """A save failed after its rename: the file on disk is the one this save wrote."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))


def write_all(fd: int, body: bytes) -> None:
    """All of `body` at the file's position; a short write (a full disk) is ENOSPC."""
    view = memoryview(body)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A save encoded on the event loop, to be written in a worker thread."""

    body: bytes
    kind: str = "full"  # or "line": a journal line (journal.py)
    marks: dict[tuple[str, ...], int] | None = None  # the Tails' ends it holds
    base: str | None = None  # the id of the state.json it writes or follows


def dumps(data: dict[str, Any]) -> str:
    """`data` as compact JSON, RawJSON values inserted as they are, Tails whole."""
    raws: list[str] = []
    mark = f"raw-{secrets.token_hex(8)}-"  # not in any string of `data`: a fresh one per call

    def placeholder(value: object) -> str:
        if isinstance(value, Tail):
            value = RawJSON(value.text())
        if not isinstance(value, RawJSON):
            raise TypeError(f"{describe(value)} is not JSON")
        raws.append(value.text)
        return f"{mark}{len(raws) - 1}"

    text = json.dumps(data, separators=(",", ":"), default=placeholder)
    for n, raw in enumerate(raws):
        text = text.replace(f'"{mark}{n}"', raw, 1)
    return text


class StateFile:
    def __init__(self, directory: Path, name: str = "state.json") -> None:
        self.path = directory / name
        self._tmp = directory / f".{name}.tmp"
        self._lock = threading.Lock()
        # Why the state on disk lags behind saves that succeed (journal.py: a compaction failing).
        self.trouble: str | None = None

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none (or it had to be set aside): it raises nothing."""
        try:
            raw = read_capped(self.path)
        except ValueError as err:
            self.set_aside("unreadable", str(err))
            return None
        if raw is None:
            return None
        try:
            data = loads(raw)
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError too
            self.set_aside("corrupt", f"not valid JSON ({describe(str(err))})")
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            self.set_aside("foreign", "not a hls-broadcaster state file")
            return None
        if data.get("version") != VERSION:
            version = describe(data.get("version"))
            self.set_aside("foreign", f"state version {version}, this release reads {VERSION}")
            return None
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.write_prepared(self.prepare(data))

    def prepare(self, data: dict[str, Any]) -> Prepared:  # on the event loop
        return Prepared(dumps({**header(), **data}).encode())

    def write_prepared(self, prepared: Prepared) -> None:
        with self._lock:  # a worker thread's save, or the caller's at shutdown: one temporary file
            self._write(prepared.body)

    def _write(self, body: bytes) -> None:
        """Raises OSError: nothing changed on disk; or Replaced: state.json is `body` already, a step after
        the rename failed. Every step that can fail harmlessly (opening the folder too) comes first."""
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                try:
                    write_all(fd, body)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(self._tmp, self.path)
            except OSError:
                with contextlib.suppress(OSError):  # its blocks back: a full disk may still take lines
                    os.unlink(self._tmp)
                raise
            try:
                os.fsync(folder)  # the rename itself must survive a power cut
            except OSError as err:
                raise Replaced(err) from err
        finally:
            with contextlib.suppress(OSError):  # read-only: nothing to flush, and Linux frees it anyway
                os.close(folder)

    def set_aside(self, kind: str, why: str) -> None:
        """Move the file aside, with one ERROR line saying why (`why` is one line, kept short)."""
        why = why.replace("\n", " ")
        why = why if len(why) <= 300 else why[:300] + "..."
        try:
            aside = files.set_aside(self.path, kind)
        except OSError as err:
            log.error("state file %s is unusable (%s) and could not be moved aside: %s", self.path, why, err)
            return
        log.error("state file %s is unusable (%s); moved it to %s and starting afresh", self.path, why, aside)
