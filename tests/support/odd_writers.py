"""Writers of a segment file that behave unlike Owncast: each leaves the file in a state a close event, a
quiet period or a whole number of packets would take for finished, then finishes it. The ledger records
the bytes the writer finally leaves, which the bucket must hold if the segment is listed at all.
`begin(path)` is a slot's `prepare` (before the playlist names the file); `finish()` completes it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import BinaryIO

from broadcaster.demo.ledger import Finished, Ledger

TS_PACKET = 188
# The odd ways, each what a finding did (issue 50):
KINDS = (
    "closed_early",  # W1: closed 100 bytes into a packet, then opened again and the rest appended
    "reopened",  # W2: closed on a packet boundary, opened again before the playlist names it, the rest later
    "renamed",  # W2: written under another name and renamed into place while still open, the rest later
    "touched",  # W2: still open on a packet boundary when another process opens and closes it (`touch`)
    "truncated",  # W5: written whole and closed, then truncate(2) by name to its own length (no open)
    # Issue 67:
    "paused",  # still open on a packet boundary, the rest written long after (longer than a target duration)
    "appended",  # closed on a packet boundary (half of it), opened again after it is listed and the rest appended
    "rewritten",  # closed on a packet boundary (half of it), then truncated (O_TRUNC) and written again whole
)
# Kinds that close the file on a packet boundary and leave it closed until finish(): the service may take
# that version, which is not the file's final one.
REOPENED_LATER = ("appended", "rewritten")


class OddWriter:
    """One segment `data` written the `kind` way (KINDS); `packets` whole packets held back until finish()."""

    def __init__(self, kind: str, data: bytes, ledger: Ledger | None = None, packets: int = 4) -> None:
        assert kind in KINDS, kind
        assert len(data) % TS_PACKET == 0 and len(data) > TS_PACKET * (packets + 1)
        self.kind, self.data, self._ledger = kind, data, ledger
        self.cut = len(data) - TS_PACKET * packets  # a packet boundary: the file alone looks whole
        if kind in REOPENED_LATER:
            self.cut = len(data) // 2 // TS_PACKET * TS_PACKET  # the 94,000 of 188,000 bytes
        if kind == "closed_early":
            self.cut += 100  # the finding: 100 bytes into a packet
        self.path: Path | None = None
        self._file: BinaryIO | None = None

    def begin(self, path: Path) -> None:
        self.path = path
        if self.kind == "truncated":
            path.write_bytes(self.data)
            os.truncate(path, len(self.data))  # by name: IN_MODIFY and no open, so no close ever follows
            self._record()
            return
        if self.kind == "renamed":
            part = path.with_name(path.name + ".tmp")  # a name the watcher does not note as stray
            self._file = open(part, "wb")  # noqa: SIM115 (kept open until finish)
            self._write(self.data[: self.cut])
            os.rename(part, path)
            return
        self._file = open(path, "wb")  # noqa: SIM115
        self._write(self.data[: self.cut])
        if self.kind in ("closed_early", "reopened", *REOPENED_LATER):
            self._file.close()
            self._file = None
        if self.kind == "reopened":
            self._file = open(path, "r+b")  # noqa: SIM115 (no O_TRUNC: no write, so no event yet)
            self._file.seek(self.cut)

    def touch(self) -> None:
        """Another process opens the file for writing and closes it, writing nothing (coreutils touch)."""
        assert self.path is not None
        subprocess.run(["touch", str(self.path)], check=True, timeout=30)

    def finish(self) -> None:
        """The rest of the bytes, then the close (for closed_early and appended: opened again first; for
        rewritten: opened again with O_TRUNC and written whole)."""
        if self.kind == "truncated" or self.path is None:
            return
        if self.kind in ("closed_early", "appended"):
            self._file = open(self.path, "ab")  # noqa: SIM115
        if self.kind == "rewritten":
            self._file = open(self.path, "wb")  # noqa: SIM115 (O_TRUNC: the file is empty again, then whole)
            self._write(self.data[: self.cut])
        assert self._file is not None
        self._write(self.data[self.cut:])
        self._file.close()
        self._file = None
        self._record()

    def close(self) -> None:
        """For a test's cleanup: close without writing the rest."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self._file.flush()

    def _record(self) -> None:
        if self._ledger is not None and self.path is not None:
            self._ledger.record(self.path, Finished.of(self.data))
