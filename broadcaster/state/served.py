"""STATE_DIR/served: how far versions were shown past the state on disk while its saves failed, under
that state's id (docs/hls-rules.md#numbers-across-restarts). Made at full size, then only overwritten in
place (a full disk cannot stop it); two checksummed slots written in turn, so a crash tears at most one.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from pathlib import Path

from .. import files

log = logging.getLogger(__name__)

NAME = "served"
SLOT = 512  # one sector each: a write tears at most the one slot it writes
_MAGIC = "hls-broadcaster/served 1"
_LINE = re.compile(rf"{re.escape(_MAGIC)} ([0-9a-f]{{16}}) (\d{{1,19}}) (\d{{1,19}}) ([0-9a-f]{{8}})\n")


class Unknown(Exception):
    """The record cannot be read: how far versions were shown is unknown."""


def _slot(lease: str, high: int, counter: int) -> bytes:
    body = f"{_MAGIC} {lease} {high} {counter}"
    line = f"{body} {zlib.crc32(body.encode()):08x}\n".encode()
    return line.ljust(SLOT, b"\0")


def _parse(raw: bytes) -> tuple[str, int, int] | None:
    """(lease, high, counter) of a slot, or None when it is empty or torn."""
    m = _LINE.fullmatch(raw.rstrip(b"\0").decode("ascii", errors="replace"))
    if m is None or _slot(m[1], int(m[2]), int(m[3])) != raw:  # its checksum, as _slot writes it
        return None
    return m[1], int(m[2]), int(m[3])


class ServedRecord:
    def __init__(self, directory: Path) -> None:
        self.path = directory / NAME
        self._counter = 0
        self.ready = False  # the file exists at full size: a write needs no new block

    def read(self) -> dict[str, int]:
        """lease id -> the highest number shown under it; {} without a file; Unknown when it is damaged."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                raw = os.pread(fd, 2 * SLOT + 1, 0)
            finally:
                os.close(fd)
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise self._unusable(f"cannot read it: {err.strerror or err}") from None
        if len(raw) != 2 * SLOT:
            raise self._unusable(f"{len(raw)} bytes, not {2 * SLOT}")
        slots = [_parse(raw[:SLOT]), _parse(raw[SLOT:])]
        valid = [s for s in slots if s is not None]
        if not valid and any(raw):
            raise self._unusable("neither slot holds a record")
        if len(valid) < 2 and any(raw[:SLOT]) and any(raw[SLOT:]):
            log.warning("%s: one slot was torn by a crash while it was written; using the other", self.path)
        self._counter = max((s[2] for s in valid), default=0)
        out: dict[str, int] = {}
        for lease, high, _counter in valid:
            out[lease] = max(out.get(lease, -1), high)
        return out

    def prepare(self) -> str | None:
        """Create the file at full size, if needed (before the disk can be full). Returns why it cannot."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                if os.fstat(fd).st_size != 2 * SLOT:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, bytes(2 * SLOT), 0)
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            self.ready = False
            return str(err.strerror or err)
        self.ready = True
        return None

    def write(self, lease: str, high: int) -> None:
        """Record `high` under `lease`, durably (OSError); opened per write: an open file stops a remount."""
        if not self.ready:
            raise OSError(f"{self.path} could not be made")
        self._counter += 1
        fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.pwrite(fd, _slot(lease, high, self._counter), (self._counter % 2) * SLOT)
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _unusable(self, why: str) -> Unknown:
        """The file set aside, with one ERROR line: the Unknown to raise."""
        try:
            aside = files.set_aside(self.path, "corrupt")
        except OSError as err:
            log.error("%s is unusable (%s) and could not be moved aside: %s", self.path, why, err)
        else:
            log.error("%s is unusable (%s); moved it to %s", self.path, why, aside)
        return Unknown()
