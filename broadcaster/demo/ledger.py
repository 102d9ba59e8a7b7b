"""What the writers of an Owncast folder finished writing: the tests' reference for "byte for byte".

A test that reads Owncast's file when it first sees it listed may read a file still being written (issue
39), and then a cut upload compares equal. So every writer of the folder (the demo's PUT receiver, the
hand-fed writers of broadcaster/demo/owncast_files.py) can record instead, per file, the SHA-256 and size
of its bytes at the moment it closes it: the final version (a file written again replaces its entry).

Opt-in (a writer given no ledger records nothing) and bounded (past `limit` files the oldest entries
go), so a demo left running does not grow without end. Thread-safe: hand-fed writers may run in threads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

LIMIT = 10_000  # files remembered: hours of a test's stream, about 2 MB


@dataclass(frozen=True)
class Finished:
    """A file as its writer closed it."""

    sha256: str  # hex
    size: int

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> Finished:
        return cls(hashlib.sha256(data).hexdigest(), len(data))

    def __str__(self) -> str:
        return f"{self.size:,} bytes (sha256 {self.sha256[:12]})"


class Ledger:
    """Per file (by absolute path), its bytes as its writer last closed it."""

    def __init__(self, limit: int = LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"a ledger keeps at least one file, not {limit}")
        self.limit = limit
        self._entries: OrderedDict[str, Finished] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(path: Path) -> str:
        return os.path.abspath(path)

    def record(self, path: Path, finished: Finished) -> None:
        """`path` was closed holding `finished`: it replaces what an earlier write recorded."""
        key = self._key(path)
        with self._lock:
            self._entries.pop(key, None)  # a rewrite is the newest entry, the last to go
            self._entries[key] = finished
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def get(self, path: Path) -> Finished | None:
        with self._lock:
            return self._entries.get(self._key(path))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def mismatch(self, path: Path, body: bytes | Finished) -> str | None:
        """None if `body` (or its hash and size) is `path` as its writer finished it; else what differs,
        for a failure's message."""
        final = self.get(path)
        got = body if isinstance(body, Finished) else Finished.of(body)
        if final is None:
            return f"{got}, but the writer of {path.name} never finished it"
        if got != final:
            return f"{got}, but the writer of {path.name} finished {final}"
        return None


class Hashing:
    """A file's bytes hashed as they are written, for the ledger when it is closed."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def finished(self) -> Finished:
        return Finished(self._hash.hexdigest(), self.size)
