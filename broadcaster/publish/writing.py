"""WritesWaited: the uploads' WriteWatch, and which files an upload is waiting on now: such a copy holds
only its own variant once another copy of its slot is in the bucket (lister.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ..source.writes import Finish
from .uploads import WriteWatch


class WritesWaited:
    def __init__(self, writes: WriteWatch, hls_dir: Path) -> None:
        self._writes = writes
        self._hls_dir = hls_dir
        self._waiting: Counter[Path] = Counter()  # file -> uploads waiting on it now
        self._writing: set[Path] = set()  # of those, files seen being written during the wait

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish:
        self._waiting[path] += 1

        def seen_writing() -> None:
            self._writing.add(path)
            if on_writing is not None:
                on_writing()

        try:
            return await self._writes.finished(path, limit, seen_writing)
        finally:
            self._waiting[path] -= 1
            if not self._waiting[path]:
                del self._waiting[path]
                self._writing.discard(path)

    def waiting(self, index: int, name: str) -> bool:
        """An upload waits for Owncast to finish variant `index`'s file `name` now."""
        return self._hls_dir / str(index) / name in self._waiting

    def writing(self, index: int, name: str) -> bool:
        """An upload waits for that file, seen being written meanwhile."""
        return self._hls_dir / str(index) / name in self._writing
