"""What becomes of a copy besides being listed, which the lister asks about (lister.py): whether its upload
still waits for Owncast to finish its file (held in its own variant meanwhile), whether its file was
written again since its upload (uploading again then, rewrites.Rewrites), and its upload once its variant
gave it up as a gap (late.LateCopies)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from ..bucket.uploader import Uploaded
from .late import LateCopies
from .rewrites import Rewrites
from .slots import Copy
from .uploads import ready_when_uploaded, retrieved
from .writing import WritesWaited


class CopyFates:
    def __init__(self, hls_dir: Path, writes: WritesWaited, rewrites: Rewrites, late: LateCopies) -> None:
        self._hls_dir = hls_dir
        self._writes = writes
        self._rewrites = rewrites
        self._late = late

    def _path(self, index: int, copy: Copy) -> Path:
        return self._hls_dir / str(index) / copy.source.name

    def waiting(self, index: int, copy: Copy) -> bool:
        """Its upload still waits for Owncast to finish its file: it holds only its own variant."""
        return self._writes.waiting(self._path(index, copy))

    def writing(self, index: int, copy: Copy) -> bool:
        """... and the file was seen being written meanwhile: a gap in its variant past its bound."""
        return self._writes.writing(self._path(index, copy))

    def written_again(self, index: int, copy: Copy) -> asyncio.Future[Uploaded] | None:
        """An uploaded copy about to be listed: None while its file is the version uploaded; else the
        follow that uploads the file's final bytes, which is the copy's upload from now on (its `ready`
        follows it): the copy is unfinished again."""
        redo = self._rewrites.stale(index, copy)
        if redo is None:
            return None
        ready: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        redo.add_done_callback(functools.partial(ready_when_uploaded, ready))
        copy.task, copy.ready = redo, ready
        return redo

    def late(self, index: int, copy: Copy, run_name: str) -> None:
        """Its variant lists a gap there from now on: its upload goes on, late (for recordings and clips),
        lost only if Owncast never finishes the file."""
        self._late.add(index, copy.key, run_name, copy.task)
        copy.ready.add_done_callback(retrieved)  # its outcome is the late upload's, told there
