"""Late is late, not lost: a copy its live playlist gave up as a gap is uploaded once Owncast finishes
it, for recordings and clips (docs/how-it-works.md, "Late, not lost"); one that lands after its gap left
every playlist goes to the cleaner.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..bucket.recorder import Recorder
from ..bucket.uploader import SegmentLost, Uploaded
from ..metrics import Metrics
from ..playlist.segments import ListedSegment, Removed
from ..state.validate import array, integer, mapping, text

log = logging.getLogger(__name__)

LANDED = 4096  # gaps whose segment landed, remembered (for clips): far more than a window holds
_MAX_SAVED = 10_000  # late uploads a saved state may name: more is not ours


@dataclass(slots=True)
class _Late:
    index: int
    key: str
    run_name: str  # its recording's run ("": none)
    since: float  # monotonic: when it was given up
    task: asyncio.Future[Uploaded] | None = None  # None: restored, its upload not started again yet
    settled: asyncio.Future[None] | None = None  # done once it landed or was lost (made with `task`)
    left: bool = False  # its gap left every playlist (handed to the cleaner)


class LateCopies:
    def __init__(self, metrics: Metrics, recorder: Recorder | None, drop: Callable[[list[Removed]], None],
                 monotonic: Callable[[], float]) -> None:
        self._metrics = metrics
        self._recorder = recorder
        self._drop = drop
        self._mono = monotonic
        self._pending: dict[str, _Late] = {}  # key -> its upload still going on
        self._landed: OrderedDict[str, None] = OrderedDict()  # keys of gaps whose segment is in the bucket

    def add(self, index: int, key: str, run_name: str, task: asyncio.Future[Uploaded]) -> None:
        """The copy `key` of variant `index` is a gap from now on; `task` uploads it."""
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = _Late(index, key, run_name, self._mono())
        entry.task = task
        entry.settled = asyncio.get_running_loop().create_future()
        if self._recorder is not None and run_name:
            self._recorder.expect(run_name, entry.settled)
        task.add_done_callback(functools.partial(self._done, entry))

    def _done(self, entry: _Late, task: asyncio.Future[Uploaded]) -> None:
        if task.cancelled():
            return  # closing: still late, saved as such
        self._pending.pop(entry.key, None)
        name = entry.key.rpartition("/")[2]
        err = task.exception()
        if err is None:
            self._metrics.segments_late.labels(variant=str(entry.index)).inc()
            self._landed[entry.key] = None
            if len(self._landed) > LANDED:
                self._landed.popitem(last=False)
            log.info("variant %d: %s finished late, %.1fs after it was listed as a gap; it is in the bucket, and "
                     "recordings and clips list it (the live playlists keep the gap they showed)",
                     entry.index, name, self._mono() - entry.since)
            if self._recorder is not None and entry.run_name:
                self._recorder.landed(entry.run_name, entry.index, name)
            if entry.left:  # its gap left every playlist before it landed: it goes too
                self._drop([Removed(ListedSegment("", 0.0, key=entry.key), self._mono(), 0.0)])
        else:
            reason = err.reason if isinstance(err, SegmentLost) else "error"
            self._metrics.segments_lost.labels(variant=str(entry.index), reason=reason).inc()
            log.warning("variant %d: segment %s lost (%s), listed as a gap: %s", entry.index, name, reason, err)
        if entry.settled is not None and not entry.settled.done():
            entry.settled.set_result(None)

    def left(self, removed: Iterable[Removed]) -> None:
        """These left every playlist: one still uploading late goes to the cleaner once it lands."""
        for r in removed:
            entry = self._pending.get(r.segment.key or "")
            if entry is not None:
                entry.left = True

    async def settled(self, keys: Iterable[str], timeout: float) -> set[str]:
        """Of these keys (gaps), those whose segment is in the bucket, waiting up to `timeout`."""
        wanted = list(keys)
        waiting = [e.settled for k in wanted if (e := self._pending.get(k)) is not None and e.settled is not None]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        return {k for k in wanted if k in self._landed}

    def uploads(self) -> list[tuple[int, str, asyncio.Future[Uploaded]]]:
        """(variant, key, upload) of each late upload not done yet."""
        return [(e.index, e.key, e.task) for e in self._pending.values() if e.task is not None and not e.task.done()]

    def saved(self) -> dict[str, object]:
        """What is late (JSON-able): uploads still going on, [variant, key, run], and the gaps landed."""
        return {"pending": [[e.index, e.key, e.run_name] for e in self._pending.values()],
                "landed": list(self._landed)}

    def restore(self, pending: Iterable[tuple[int, str, str]], landed: Iterable[str]) -> None:
        """`saved`'s values (the uploads start again with `resume`)."""
        for index, key, run_name in pending:
            self._pending.setdefault(key, _Late(index, key, run_name, self._mono()))
        for key in landed:
            self._landed[key] = None
        while len(self._landed) > LANDED:
            self._landed.popitem(last=False)

    def resume(self, start: Callable[[int, str], asyncio.Future[Uploaded]]) -> None:
        for entry in [e for e in self._pending.values() if e.task is None]:
            self.add(entry.index, entry.key, entry.run_name, start(entry.index, entry.key))


def parse_saved(raw: object) -> tuple[list[tuple[int, str, str]], list[str]]:
    """`LateCopies.saved` read back, every value checked."""
    d = mapping(raw, "late", 2)
    pending: list[tuple[int, str, str]] = []
    for item in array(d.get("pending", []), "late uploads", _MAX_SAVED):
        entry = array(item, "a late upload", 3)
        if len(entry) != 3:
            raise ValueError("a late upload is not [variant, key, run]")
        pending.append((integer(entry[0], "a late upload's variant", 0, 9999), text(entry[1], "a late key"),
                        text(entry[2], "a late upload's run", 1 << 16, one_line=False)))
    landed = [text(k, "a landed key") for k in array(d.get("landed", []), "late keys landed", _MAX_SAVED)]
    return pending, landed
