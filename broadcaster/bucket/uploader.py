"""Uploads segment files to the bucket: bounded concurrency, a total timeout per attempt, and
retries for as long as the file (or the copy kept of it) is still on disk: while the bucket fails, one
at a time on the bucket's exponential backoff with full jitter (turns.py), all at once when it works."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..files import MAX_FILE_BYTES, Stamp, is_temporary
from ..lograte import RateLimitedLog
from ..metrics import UPLOAD_FAILURE_REASONS, BucketMetrics, Metrics, bounded
from ..playlist import hls
from .segment_reads import (
    NO_COPY, COPY_DROPPED, FirstBody, Holder, HoldRead, Kept, Read, SegmentLost, Uploaded, held_or_first,
    hold_first, kept_or_read, read_and_hash, read_segment_file, read_segment_stamped,
)
from .outage import OutageLog
from .lateness import Waiting
from .store import within
from .turns import Alive, RetryTurns

__all__ = ["COPY_DROPPED", "Backoff", "Holder", "Kept", "ObjectStore", "SegmentLost", "Uploaded", "Uploader",
           "read_segment_file", "read_segment_stamped"]

log = logging.getLogger(__name__)


class ObjectStore(Protocol):
    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """The wait before retry number `attempt` (from 0): exponential, capped, with full jitter."""

    base: float = 0.25
    cap: float = 15.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2**attempt) * self.rng())


@dataclass(slots=True)
class Job:
    """One upload. `read`: an attempt's bytes; `on_failed(body, stamp)`: after a failed attempt (a worker
    thread); `first`: the first attempt's body, read already; `keep`: the file's parts beneath HLS_DIR, held
    and copied at the first failed attempt; `alive`: whether its bytes are anywhere (None: always)."""

    key: str
    read: Read
    content_type: str
    cache_control: str
    variant: str | None  # None: bytes made here (a recording's playlist), not a segment
    hashed: bool
    on_failed: Callable[[bytes, Stamp | None], object] | None = None
    first: FirstBody | None = None
    keep: tuple[str, ...] | None = None
    alive: Alive | None = None


class Uploader:
    def __init__(self, store: ObjectStore, metrics: Metrics | BucketMetrics, *, concurrency: int,
                 attempt_timeout: float, backoff: Backoff = Backoff(), holder: Holder | None = None,
                 pathway: str = "bucket") -> None:
        """`holder` (vm/held.py): what is held of each segment; `pathway`: told with each landing."""
        self._store = store
        self._holder = holder
        self.pathway = pathway
        self._metrics = BucketMetrics.of(metrics, pathway)
        self._slots = asyncio.Semaphore(concurrency)
        self._attempt_timeout = attempt_timeout
        self._retry = backoff
        self._sleep = backoff.sleep
        self.uploads_done = 0
        self.uploads_failed = 0  # failed attempts
        self.storage_ok: bool | None = None  # None until the first outcome
        self.last_error: str | None = None
        self.on_failure: Callable[[], None] = lambda: None  # told each failed outcome (steering/probe.py)
        self.waits = Waiting(backoff.clock)  # the uploads not done yet; tells the steering loop of a late one
        self._turns = RetryTurns(backoff.delay, lambda delay: self._sleep(delay))  # a retry per backoff turn
        self._unreadable = RateLimitedLog(log)
        self.last_landed: tuple[str, float] | None = None  # the newest segment's key it stored, and when
        self._outage = OutageLog(log, waiting=self.waiting, clock=backoff.clock)
        self._metrics.upload_wait.set_function(lambda: self.waiting()[1] or 0.0)

    @property
    def holds(self) -> bool:  # a holder was given
        return self._holder is not None

    def waiting(self) -> tuple[int, float | None]:
        """Uploads not done yet, and how long the oldest has waited (None when none waits)."""
        return self.waits.now()

    def outage(self) -> dict[str, object] | None:
        """While the bucket fails (else None), for /health: uploads waiting, segments lost, copies kept."""
        if (down_for := self._outage.down_for()) is None:
            return None
        count, oldest = self.waiting()
        body: dict[str, object] = {"for_seconds": round(down_for, 1), "uploads_waiting": count,
                                   "oldest_waiting_seconds": None if oldest is None else round(oldest, 1),
                                   "segments_lost": self._outage.lost_count}
        if (holder := self._holder) is not None:
            kept = holder.total_bytes
            bound, by = holder.room()
            rate = kept / down_for if down_for > 0 else 0.0
            body.update(copies_bytes=kept, copies_bound_bytes=bound, copies_bound_by=by,
                        copies_full_in_seconds=round(max(0, bound - kept) / rate) if rate > 0 else None)
        return body

    def record(self, ok: bool, reason: str | None = None) -> None:
        """Note the outcome of any bucket operation, for /health and the storage_up gauge."""
        self.storage_ok = ok
        self.last_error = None if ok else reason
        self._metrics.storage_up.set(1 if ok else 0)
        if ok:
            self._turns.open()
            self._outage.ok()
        else:
            self._outage.failed(reason or "unknown")
            self.on_failure()

    async def upload_file(self, path: Path, key: str, variant: str, *, root: Path | None = None,
                          hashed: bool = False, on_kept: Callable[[Kept], None] | None = None,
                          parts: tuple[str, ...] | None = None) -> Uploaded:
        """Upload one file (with a holder and `on_kept`: read, held, told first); SegmentLost if it cannot."""
        content_type = _segment_type(str(path))
        read = functools.partial(read_segment_stamped, path, MAX_FILE_BYTES, root=root)
        keep = None
        if (holder := self._holder) is not None:
            if parts is None:
                base = (root if root is not None else path.parent).parts  # not relative_to: two Paths
                whole, n = path.parts, len(base)
                parts = whole[n:] if whole[:n] == base and len(whole) > n else (path.name,)
            if on_kept is None:
                keep = parts  # held once an attempt fails: nothing per segment while nothing fails
            else:
                first, body = await self._first_read(read, holder, key, parts, hashed, content_type)
                on_kept(first)
                if first.kept:  # else changed while it was read: read again for each attempt, as below
                    box: FirstBody = [(body, first.stamp, first.sha256)]
                    del body  # the box alone has it, and the first attempt takes it out
                    return await self.upload_held(key, variant, first.stamp, box)
        return await self._put(Job(key, read, content_type, hls.SEGMENT_CACHE_CONTROL, variant, hashed,
                                   keep=keep, alive=path.exists))

    def has(self, key: str) -> bool:
        return self._holder is not None and self._holder.get(key) is not None

    async def hold(self, path: Path, key: str, parts: tuple[str, ...], *, root: Path | None = None,
                   hashed: bool = False) -> Kept:
        """Read `path` and hold that version now (publish/uploads.py's release_held)."""
        content_type = _segment_type(str(path), self._holder is not None)
        read = functools.partial(read_segment_stamped, path, MAX_FILE_BYTES, root=root)
        assert self._holder is not None
        return (await self._first_read(read, self._holder, key, parts, hashed, content_type, held_or_first))[0]

    async def upload_held(self, key: str, variant: str, stamp: Stamp | None = None,
                          first: FirstBody | None = None) -> Uploaded:
        """Upload the version the holder holds (with `first`: read already); SegmentLost once it is gone."""
        content_type = _segment_type(key, self._holder is not None)
        holder = self._holder
        assert holder is not None

        def body() -> tuple[bytes, Stamp | None]:
            data = holder.body(key)
            if data is None:  # read only after a failed attempt, which keeps a copy where it can
                raise SegmentLost(COPY_DROPPED, f"{key}: {NO_COPY}")
            return data, stamp

        done = await self._put(Job(key, body, content_type, hls.SEGMENT_CACHE_CONTROL, variant, False,
                                   on_failed=lambda data, _stamp: holder.keep(key, data),
                                   first=first, alive=functools.partial(holder.alive, key)))
        holder.landed(key, self.pathway)
        return done

    async def _first_read(self, read: Read, holder: Holder, key: str, parts: tuple[str, ...],
                          hashed: bool, content_type: str, how: HoldRead = hold_first) -> tuple[Kept, bytes]:
        """The file read and held once, off the event loop; out of handles or memory, tried again."""
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(how, read, holder, key, parts, hashed, content_type)
            except OSError as err:
                self._unreadable_now(err, key)
            await self._sleep(self._retry.delay(attempt))
            attempt += 1

    def _unreadable_now(self, err: OSError, key: str) -> None:
        """Out of handles or memory: said (rate-limited), and tried again; any other OSError raised."""
        if not is_temporary(err):
            raise err
        self._unreadable.warning("unreadable", "cannot read the file for %s for now (%s); trying again",
                                 key, err.strerror)

    async def upload_bytes(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> float:
        """Upload bytes made here (a recording's playlist); retried until it succeeds."""
        return (await self._put(Job(key, lambda: (body, None), content_type, cache_control, None, False,
                                    first=[(body, None, None)]))).took

    async def _put(self, job: Job) -> Uploaded:
        upload_id = self.waits.begin()
        try:
            return await self._attempts(job)
        finally:
            self.waits.end(upload_id)

    async def _attempts(self, job: Job) -> Uploaded:
        """Until the bucket has it (or it is lost: SegmentLost)."""
        key, read, content_type, cache_control = job.key, job.read, job.content_type, job.cache_control
        variant, hashed, on_failed, first, keep, alive = \
            job.variant, job.hashed, job.on_failed, job.first, job.keep, job.alive
        attempt = 0
        kept: Stamp | None = None  # the version held and kept after a failed attempt (`keep`)
        waited = False  # the bucket failed an attempt: a loss now is the outage's (OutageLog.lost)
        while True:
            bucket_failed = True
            async with self._slots:
                try:
                    body, stamp, digest = (first.pop() if first and not hashed  # in memory: no thread's hop
                                           else await asyncio.to_thread(read_and_hash, read, hashed))
                except SegmentLost as err:
                    if waited and variant is not None:
                        err.told = self._outage.lost(err.reason)
                    raise
                except OSError as err:  # out of handles or memory (read_segment_stamped lets only those out)
                    self._unreadable_now(err, key)
                    bucket_failed = False
                else:
                    started = time.perf_counter()
                    put = self._store.put(key, body, content_type=content_type, cache_control=cache_control)
                    if (failed := await within(put, self._attempt_timeout)) is not None:
                        reason = failed.reason
                        self.uploads_failed += 1
                        waited = True
                        self._metrics.upload_failures(reason=bounded(reason, UPLOAD_FAILURE_REASONS)).inc()
                        log.debug("upload of %s failed (attempt %d): %s", key, attempt + 1, reason)
                        self.record(False, reason)
                        if on_failed is not None:
                            await asyncio.to_thread(on_failed, body, stamp)
                        elif keep is not None and kept is None and stamp is not None and self._holder is not None:
                            holder = self._holder
                            if await asyncio.to_thread(holder.hold_kept, key, keep, stamp, body, content_type):
                                kept = stamp
                                read = functools.partial(kept_or_read, holder, key, stamp, read)
                                alive = functools.partial(holder.alive, key)
                    else:
                        took = time.perf_counter() - started
                        log.debug("uploaded %s (%d bytes) in %.0f ms", key, len(body), took * 1000)
                        if variant is not None:
                            self.last_landed = (key, self._retry.clock())
                            self._metrics.upload_duration.observe(took)
                            self._metrics.segments_uploaded(variant=variant).inc()
                            self._metrics.bytes_uploaded(variant=variant).inc(len(body))
                            self.uploads_done += 1
                        self.record(True)
                        if kept is not None:
                            self._holder.landed(key, self.pathway)  # type: ignore[union-attr]
                        return Uploaded(took, digest, stamp)
            body = b""  # not kept through the wait (FirstBody): the next attempt reads it again
            attempt += 1
            if bucket_failed:
                await self._turns.wait(alive)
            else:  # the bucket did not fail: this file could not be read for now
                await self._sleep(self._retry.delay(attempt - 1))


def _segment_type(name: str, usable: bool = True) -> str:
    """The content type of a segment file; SegmentLost when it is no type we publish, or not `usable`."""
    if (content_type := hls.segment_content_type(name)) is None or not usable:
        raise SegmentLost("bad_type", f"{name} is not a segment type we publish")
    return content_type
