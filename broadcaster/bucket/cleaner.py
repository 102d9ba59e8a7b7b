"""Deletes segments from the bucket once no playlist may list them any more (6.2.2), by the keys the service
knows (listing is a paid call), in batches, with retries; what is still to delete is saved."""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ..lograte import RateLimitedLog
from ..metrics import BucketMetrics, Metrics
from ..playlist.segments import Removed
from ..source.tasks import cancelled
from ..state import validate
from ..state.disk import RawJSON
from ..tails import Log, Tail
from .store import StoreError

log = logging.getLogger(__name__)

BATCH = 1000  # DeleteObjects' limit
MAX_RESTORED = 2_000_000  # keys in a saved state (a day-long outage, 1 s segments, 4 variants: ~350,000)
_ALIVE = 1 << 62  # a note's stamp until it dies: later than any snapshot's


class DeletingStore(Protocol):
    async def delete_many(self, keys: list[str]) -> list[str]: ...


class Cleaner:
    def __init__(self, store: DeletingStore, metrics: Metrics | BucketMetrics, *, margin: float,
                 interval: float = 5.0, retry_after: float = 30.0,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._metrics = BucketMetrics.of(metrics)
        self._margin = margin
        self._interval = interval
        self._retry_after = retry_after
        self._wall = wall_clock
        self._due: list[tuple[float, str]] = []  # heap of (unix time it may go, key)
        self._held: dict[str, int] = {}  # keys a clip lists (how many clips)
        self._kept: dict[str, float] = {}  # of those, the ones that came due meanwhile, with their time
        self._deleting: list[tuple[float, str]] = []  # the batch being deleted: in the state till it answers
        self._notes = DueNotes()
        self._task: asyncio.Task[None] | None = None
        self.deleted = 0
        self._lines = RateLimitedLog(log)  # a run every `interval` fails all through an outage

    def schedule(self, removed: list[Removed]) -> None:
        now = self._wall()
        for r in removed:
            if r.segment.key:
                self._push(r.segment.key, now + r.keep + self._margin)
                log.debug("%s may go in %.1fs", r.segment.key, r.keep + self._margin)
        self._metrics.cleanup_pending.set(self.pending)

    def delete_soon(self, key: str) -> None:
        """A key no playlist lists (a start check's probe object left behind): gone at the next run."""
        self._push(key, self._wall())
        self._metrics.cleanup_pending.set(self.pending)

    def hold(self, keys: list[str]) -> None:
        """A clip lists these: they outlive the window until every clip that lists them is deleted."""
        for key in keys:
            self._held[key] = self._held.get(key, 0) + 1

    def let_go(self, keys: list[str]) -> None:
        """A clip was deleted: its segments that left every playlist meanwhile go at the next run."""
        now = self._wall()
        for key in keys:
            if (count := self._held.get(key, 0) - 1) > 0:
                self._held[key] = count
                continue
            self._held.pop(key, None)
            if (due := self._kept.pop(key, None)) is not None:
                self._push(key, min(due, now))
        self._metrics.cleanup_pending.set(self.pending)

    @property
    def pending(self) -> int:
        return len(self._due) + len(self._deleting)

    @property
    def kept(self) -> int:  # segments past their time that a clip keeps
        return len(self._kept)

    def _push(self, key: str, due: float) -> None:
        heapq.heappush(self._due, (due, key))
        self._notes.note(key, due)

    def snapshot(self) -> Tail:
        """Every key still to delete with its due time (those a clip keeps too); the later note wins."""
        return self._notes.snapshot()

    def restore(self, data: object) -> None:
        if isinstance(data, Tail):  # restored without going through a file
            data = RawJSON(data.text()).decode()
        latest: dict[str, float] = {}
        for item in validate.array(data, "cleaner state", MAX_RESTORED):
            if item is None:  # a note that died before it was saved
                continue
            if len(pair := validate.array(item, "a key to delete", 2)) != 2:
                raise ValueError(f"a key to delete is {validate.describe(pair)}, not [key, time]")
            key = validate.text(pair[0], "a key to delete")
            latest.pop(key, None)
            latest[key] = validate.number(pair[1], "a deletion time")
        self._due = [(when, key) for key, when in latest.items()]
        heapq.heapify(self._due)
        self._kept, self._deleting, self._notes = {}, [], DueNotes()
        for key, when in latest.items():
            self._notes.note(key, when)
        self._metrics.cleanup_pending.set(self.pending)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bucket-cleaner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancelled(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.run_once()

    async def run_once(self) -> None:
        now = self._wall()
        while self._due and self._due[0][0] <= now and len(self._deleting) < BATCH:
            due, key = heapq.heappop(self._due)
            if key in self._held:
                self._kept[key] = due
            else:
                self._deleting.append((due, key))
        if not self._deleting:
            self._metrics.cleanup_pending.set(self.pending)
            return
        batch = [key for _, key in self._deleting]
        log.debug("deleting %s", " ".join(batch))
        try:
            failed = await self._store.delete_many(batch)
        except StoreError as err:
            failed = batch
            self._lines.warning("delete_failed", "deleting %d old segments failed (%s); will retry",
                                len(batch), err.reason)
        except asyncio.CancelledError:  # stopped mid-call: the keys stay due, for the saved state
            for item in self._deleting:
                heapq.heappush(self._due, item)
            self._deleting = []
            self._metrics.cleanup_pending.set(self.pending)
            raise
        self._deleting = []
        if failed:
            log.debug("not deleted, retried in %.0fs: %s", self._retry_after, " ".join(failed))
        for key in failed:
            self._push(key, now + self._retry_after)
        for key in set(batch).difference(failed):
            self._notes.forget(key)
        done = len(batch) - len(failed)
        self.deleted += done
        self._metrics.cleanup_deleted.inc(done)
        self._metrics.cleanup_pending.set(self.pending)
        if done:
            log.debug("deleted %d segments that left every playlist", done)


class _NotesTail(Tail):
    """Notes `first` .. `end - 1` as they were at death stamp `tick`: dead ones (stamped before) null."""

    __slots__ = ("_died", "_tick")

    def __init__(self, first: int, end: int, texts: list[str], died: list[int], offset: int,
                 tick: int) -> None:
        super().__init__(first, end, texts, offset)
        self._died, self._tick = died, tick

    def since(self, n: int) -> list[str]:
        start, stop = max(n, self.first) - self._offset, self.end - self._offset
        tick = self._tick
        return [text if died >= tick else "null"
                for text, died in zip(self._items[start:stop], self._died[start:stop])]


class DueNotes(Log):
    """What the cleaner saves, each key's due time noted when it changes: from the oldest live note, null for
    one that died (deleted or noted again), so a save writes only what changed (state/journal.py). A snapshot
    reads as it was taken: its lists are only appended to, and a death is stamped later than it."""

    __slots__ = ("_died", "_live", "_tick")

    def __init__(self) -> None:
        super().__init__()  # each note's saved [key, time]
        self._died: list[int] = []  # each note's death stamp (_ALIVE until it dies), set once
        self._live: dict[str, int] = {}  # key -> the id of its latest note
        self._tick = 0  # the next death stamp

    def note(self, key: str, due: float) -> None:
        """`key` may go at `due`: its earlier note dies."""
        self._die(self._live.get(key))
        self._live[key] = self.end
        self.add(json.dumps([key, round(due, 3)], separators=(",", ":")))
        self._died.append(_ALIVE)

    def forget(self, key: str) -> None:
        """`key` was deleted: its note dies."""
        self._die(self._live.pop(key, None))

    def _die(self, note: int | None) -> None:
        if note is not None and note >= self._offset:
            self._died[note - self._offset] = self._tick
            self._tick += 1

    def drop_to(self, first: int) -> None:
        offset = self._offset
        super().drop_to(first)
        if self._offset != offset:  # the texts moved to a new list: the stamps too, a Tail keeps the old
            self._died = self._died[self._offset - offset:]

    def snapshot(self) -> Tail:
        """Every live note from the oldest one on, dead ones between them null, as they are now."""
        end, first = self.end, self.first
        while first < end and self._died[first - self._offset] != _ALIVE:
            first += 1
        if end - first > 2 * len(self._live) + 64:
            # Keys a clip keeps hold the front while newer notes die: note the live ones again, in order.
            for n, key in sorted((n, key) for key, n in self._live.items()):
                self._live[key] = self.end
                self.add(self._items[n - self._offset])
                self._died.append(_ALIVE)
            first = end
        self.drop_to(first)
        return _NotesTail(self.first, self.end, self._items, self._died, self._offset, self._tick)
