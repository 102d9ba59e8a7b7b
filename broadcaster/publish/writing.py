"""WritesWaited: the uploads' WriteWatch, and which files an upload is waiting on now.

An upload first waits until Owncast has finished its file (source.writes). A copy whose upload is still
in that wait when its slot's other copies are in the bucket holds only its own variant (lister.py), and
only for a bounded time: Owncast gets a body over loopback within milliseconds of the playlist that
names it, so a file still being written by then has a stuck writer. A copy that is uploading is waited
for: its bytes are whole, the bucket is merely slower than for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..source.writes import Finish
from .uploads import WriteWatch


class WritesWaited:
    def __init__(self, writes: WriteWatch) -> None:
        self._writes = writes
        self._waiting: dict[Path, int] = {}  # file -> uploads waiting on it now

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish:
        self._waiting[path] = self._waiting.get(path, 0) + 1
        try:
            return await self._writes.finished(path, limit, on_writing)
        finally:
            left = self._waiting[path] - 1
            if left:
                self._waiting[path] = left
            else:
                del self._waiting[path]

    def waiting(self, path: Path) -> bool:
        """An upload is waiting for Owncast to finish writing `path` now."""
        return path in self._waiting
