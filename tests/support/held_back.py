"""A segment Owncast is still writing when its playlist names it, held there by the test.

Owncast copies each PUT body into the file as it arrives, so the playlist can list a segment whose last
bytes are still on their way (docs/owncast.md). `HeldBack` writes the file in place up to its last `hold`
bytes and keeps it open; `release()` writes the rest and closes it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from broadcaster.source.writes import Finish

if TYPE_CHECKING:
    from tests.support.world import World


class HeldBack:
    """One segment's body, written but for its last `hold` bytes until `release()`. Use `begin` as the
    writer of the segment's file (HandFedOwncast.slot's `prepare`), then let the playlist name it."""

    def __init__(self, data: bytes, hold: int) -> None:
        assert 0 < hold < len(data)
        self.data, self.hold = data, hold
        self.path: Path | None = None
        self._file: BinaryIO | None = None

    @property
    def sha256(self) -> str:
        """The file as Owncast finishes it."""
        return hashlib.sha256(self.data).hexdigest()

    def begin(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 (kept open until release)
        self._file.write(self.data[: -self.hold])
        self._file.flush()

    def release(self) -> None:
        """The rest of the body, then the close."""
        assert self._file is not None, "begin() first"
        self._file.write(self.data[-self.hold:])
        self._file.flush()
        self._file.close()
        self._file = None

    def close(self) -> None:
        """For a test's cleanup: close without writing the rest (an aborted body)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> HeldBack:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


class HeldWrites:
    """source.writes at the seam: every file is finished when asked, but those the test holds (by name, in
    variant `variant`'s folder), whose writer is stuck until released (or the upload's limit)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], asyncio.Event] = {}

    def hold(self, name: str, variant: int = 0) -> None:
        self._held[(str(variant), name)] = asyncio.Event()

    def release(self, name: str, variant: int = 0) -> None:
        self._held.pop((str(variant), name)).set()

    def release_all(self, keep: Callable[[], bool] = lambda: False) -> None:
        """Release every held file but those `keep` says to keep (asked once per file)."""
        for held in list(self._held):
            if not keep():
                self._held.pop(held).set()

    def follow(self, hook: Callable[[Path | None], None]) -> None:
        """No write is ever heard here (the files the test holds are not written meanwhile)."""

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish:
        held = self._held.get((path.parent.name, path.name))
        if held is None:
            return Finish.READY
        if on_writing is not None:
            on_writing()
        try:
            async with asyncio.timeout(limit):
                await held.wait()
        except TimeoutError:
            return Finish.UNFINISHED
        return Finish.WAITED


def both_list(world: World, i: int, held: HeldWrites | None = None) -> None:
    """Owncast lists stream-a-<i>.ts in variants 0 and 1, variant 0's file held open by `held` if given."""
    name = f"stream-a-{i}.ts"
    if held is not None:
        held.hold(name)
    world.owncast_lists((0, 1), name)
