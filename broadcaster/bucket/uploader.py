"""Uploads segment files to the bucket: bounded concurrency, a total timeout per attempt, and
retries for as long as the file (or the copy kept of it) is still on disk: while the bucket fails, one
at a time on the bucket's exponential backoff with full jitter (turns.py), all at once when it works."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from ..files import MAX_FILE_BYTES, Refused, Stamp, is_temporary, read_stamped
from ..lograte import RateLimitedLog
from ..metrics import UPLOAD_FAILURE_REASONS, BucketMetrics, Metrics, bounded
from ..playlist import hls
from .copies_room import room
from .outage import OutageLog
from .store import StoreError
from .turns import Alive, RetryTurns

log = logging.getLogger(__name__)
_new = tuple.__new__  # a NamedTuple made without its Python-level __new__ (Kept: one per segment)

# Seconds the oldest upload waiting has waited when a later one starts, past which the lateness timer is
# armed for it (Uploader.on_late): more than the few milliseconds between the variants' uploads of one
# segment, less than the second between segments.
ARM_AFTER = 0.5


class ObjectStore(Protocol):
    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None: ...


# The reason a segment is lost when the copy kept for its upload is gone (dropped past VM_COPIES_MB or
# for the disk's reserve, or never kept for them) and Owncast deleted its file before the bucket took it:
# the segment exists nowhere (segments_lost_total{reason="copy_dropped"}, and the outage's lines count it).
COPY_DROPPED = "copy_dropped"
_NO_COPY = ("no copy of it is left (VM_COPIES_MB, or the disk's reserve under STATE_DIR) and Owncast deleted its "
            "file before the bucket took it")


class SegmentLost(Exception):
    """The segment can never be uploaded (deleted by Owncast, empty, unsafe...). `reason` is a label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.told = False  # an outage's lines count it (OutageLog.lost): not said again per segment


def read_segment_file(path: Path, max_bytes: int, *, root: Path | None = None) -> bytes:
    """Read a regular file, refusing symlinks, special files, empty and oversized files. With `root`
    (HLS_DIR), no folder below it is entered through a symlink either (see broadcaster/files.py).

    Raises SegmentLost when it can never be read, OSError when it may be later (out of handles).
    """
    return read_segment_stamped(path, max_bytes, root=root)[0]


def read_segment_stamped(path: Path, max_bytes: int, *, root: Path | None = None) -> tuple[bytes, Stamp | None]:
    """read_segment_file, and the stamp of the version read (None: it changed while it was read)."""
    base = root if root is not None else path.parent
    if not path.is_relative_to(base):
        raise SegmentLost("not_a_file", f"{path} is not inside {base}")
    try:
        data, stamp = read_stamped(base, path.relative_to(base).parts, max_bytes)
        return _nonempty(path, data), stamp
    except FileNotFoundError as err:
        raise SegmentLost("deleted", f"{path} was deleted before it was uploaded") from err
    except Refused as err:
        raise SegmentLost(err.reason, str(err)) from err
    except OSError as err:
        if is_temporary(err):
            raise  # out of handles or memory: the upload tries again
        raise SegmentLost("unreadable", f"{path}: {err.strerror}") from err


def _nonempty(path: Path, data: bytes) -> bytes:
    if not data:
        raise SegmentLost("empty", f"{path} is empty")
    return data


class Uploaded(NamedTuple):
    """A segment in the bucket: how long its successful PutObject took (seconds), the SHA-256 of the
    exact body that PutObject sent (what a viewer checks a peer's copy against, viewer/p2p.js), and the
    stamp of the file's version that body was read from."""

    took: float
    sha256: bytes | None  # None: not asked for (P2P off), or uploaded before a restart (bytes not at hand)
    stamp: Stamp | None = None  # None: bytes made here, or the file changed while it was read


Read = Callable[[], tuple[bytes, Stamp | None]]


def _read_and_hash(read: Read, hashed: bool) -> tuple[bytes, Stamp | None, bytes | None]:
    """The body an attempt sends, the stamp of its file and, when asked, its SHA-256, off the event loop
    (~2 ms a MB): the hash is of that very object, the one PutObject is given."""
    body, stamp = read()
    return body, stamp, hashlib.sha256(body).digest() if hashed else None


class Holder(Protocol):
    """What the service holds of each finished segment (held.Held): the version read first, its bytes
    (a copy, or Owncast's file while unchanged), a copy kept when an upload fails, each bucket's landing."""

    def first(self, key: str, parts: tuple[str, ...], stamp: Stamp,
              content_type: str | None = None) -> object | None: ...

    def body(self, key: str) -> bytes | None: ...

    def held_body(self, key: str) -> tuple[bytes, Stamp] | None: ...

    def get(self, key: str) -> object | None: ...

    def keep(self, key: str, body: bytes) -> bool: ...

    def hold_kept(self, key: str, parts: tuple[str, ...], stamp: Stamp, body: bytes,
                  content_type: str | None = None) -> bool: ...

    def landed(self, key: str, bucket: str) -> None: ...

    def alive(self, key: str) -> bool: ...  # its copy, or Owncast's file, is there

    @property
    def total_bytes(self) -> int: ...  # the copies' bytes on disk

    max_bytes: int  # their bound (VM_COPIES_MB)

    @property
    def folder(self) -> Path: ...  # where they are (STATE_DIR/segments): its disk's reserve bounds them too


# The bytes a first attempt sends, read already: with their stamp and SHA-256 (None: not hashed).
ReadBody = tuple[bytes, Stamp | None, bytes | None]
# The body the first attempt sends, read already, in a box the attempts empty: no frame that waits out a
# backoff (the callers', the attempts') keeps a segment's bytes. While the bucket is down every upload
# waits; had each kept its body, the service's memory grew by a segment per upload for as long as the
# outage lasted (the copies to send again are on disk, bucket/held.py).
FirstBody = list[ReadBody]


class Kept(NamedTuple):
    """A file's first read, held: its stamp and SHA-256, and whether the service holds it (the VM's
    pathway may list it at once). A tuple: one is made for every segment (held.HeldFile says why)."""

    stamp: Stamp | None
    sha256: bytes | None
    kept: bool


def _hold_first(read: Read, holder: Holder, key: str, parts: tuple[str, ...], hashed: bool,
                content_type: str) -> tuple[Kept, bytes]:
    """Read the file once, hold that version and hash it (on a worker thread)."""
    body, stamp = read()
    held = stamp is not None and holder.first(key, parts, stamp, content_type) is not None
    return _new(Kept, (stamp, hashlib.sha256(body).digest() if hashed else None, held)), body


def _kept_or_read(holder: Holder, key: str, stamp: Stamp, read: Read) -> tuple[bytes, Stamp | None]:
    """An attempt after a failed one kept a copy: the copy (or Owncast's file while it is that version);
    Owncast's file as it is now once neither is there (the copy dropped for the cap or the disk)."""
    data = holder.body(key)
    if data is not None:
        return data, stamp
    try:
        return read()
    except SegmentLost as err:
        if err.reason != "deleted":
            raise
        raise SegmentLost(COPY_DROPPED, f"{key}: {_NO_COPY}") from err


def _held_or_first(read: Read, holder: Holder, key: str, parts: tuple[str, ...], hashed: bool,
                   content_type: str) -> tuple[Kept, bytes]:
    """Uploader.hold, on a worker thread: the version held already (a failed attempt kept a copy, which
    outlives Owncast's file), else the file read and held as a first read."""
    got = holder.held_body(key)
    if got is None:
        return _hold_first(read, holder, key, parts, hashed, content_type)
    body, stamp = got
    return _new(Kept, (stamp, hashlib.sha256(body).digest() if hashed else None, True)), body


HoldRead = Callable[[Read, Holder, str, tuple[str, ...], bool, str], tuple[Kept, bytes]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before retry number `attempt` (from 0): exponential, capped, with full jitter
    (AWS architecture blog). The bucket's turns while it fails (turns.py), and a file's reads out of
    handles."""

    base: float = 0.25
    cap: float = 15.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2**attempt) * self.rng())


class Uploader:
    def __init__(
        self,
        store: ObjectStore,
        metrics: Metrics | BucketMetrics,
        *,
        concurrency: int,
        attempt_timeout: float,
        max_file_bytes: int = MAX_FILE_BYTES,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
        outage: OutageLog | None = None,
        holder: Holder | None = None,
        pathway: str = "bucket",
    ) -> None:
        """`holder` (content steering, bucket/held.py): a segment file whose upload is told `on_kept` is first
        read once, outside the upload slots, and held (the VM's pathway may list it at once, and every
        bucket's upload sends that version); one that is not is held only once an attempt fails. A failed
        attempt keeps a copy, so the next ones survive Owncast's cleanup. `pathway`: the bucket's pathway
        ID, which it tells the holder with each landing of what it holds."""
        self._store = store
        self._holder = holder
        self.pathway = pathway
        self._metrics = BucketMetrics.of(metrics, pathway)
        self._slots = asyncio.Semaphore(concurrency)
        self._attempt_timeout = attempt_timeout
        self._max_file_bytes = max_file_bytes
        self._retry = backoff
        self._sleep = backoff.sleep
        self.uploads_done = 0
        self.uploads_failed = 0  # failed attempts
        self.storage_ok: bool | None = None  # None until the first outcome
        self.last_error: str | None = None
        # Told each failed outcome (the steering loop evaluates at once: steering/probe.py's look).
        self.on_failure: Callable[[], None] = lambda: None
        # Told when the oldest upload not done has waited `late_after()` seconds (the steering loop then
        # evaluates, rather than looking on a timer of its own while nothing is amiss). One timer, for the
        # oldest upload waiting, armed once a later upload starts while it has waited ARM_AFTER (the next
        # segment's: Owncast writes one at least every target duration, and late_after is one at least, so
        # it is armed in time); cancelled once none waits. Not armed for every upload (issue 66 item 3: an
        # arming and a cancel per upload while the bucket takes each at once), nor left armed (it woke the
        # event loop every late_after for nothing). An upload no other follows (the stream's last) is
        # found when its attempt times out (UPLOAD_TIMEOUT, 5 s by default: on_failure), or by the
        # steering loop's own turn (probe.QUIET_EVERY).
        self.on_late: Callable[[], None] = lambda: None
        self.late_after: Callable[[], float | None] = lambda: None  # None: nobody asks
        self._late: asyncio.TimerHandle | None = None
        self._told = -1  # the upload on_late was told of (its ID)
        # The uploads whose attempt the bucket failed: one retries per turn of the bucket's backoff, and
        # all go at once when the bucket works again (record), instead of each on its own timer.
        self._turns = RetryTurns(backoff.delay, lambda delay: self._sleep(delay))
        self._unreadable = RateLimitedLog(log)
        self._clock = clock
        self._waiting: dict[int, float] = {}  # each upload not done yet -> when it began (in order)
        self._next_id = 0
        self.last_landed: tuple[str, float] | None = None  # the newest segment's key it stored, and when
        # Outages are told in a few lines (outage.py); each failed attempt is a DEBUG line.
        self._outage = outage or OutageLog(log, waiting=self.waiting, clock=clock)
        self._metrics.upload_wait.set_function(lambda: self.waiting()[1] or 0.0)

    @property
    def holds(self) -> bool:
        """Segment files may be held (a holder was given)."""
        return self._holder is not None

    def waiting(self) -> tuple[int, float | None]:
        """Uploads not done yet (each retried until it succeeds or its file is gone), and how long
        the oldest has waited in seconds (None when none waits)."""
        oldest = next(iter(self._waiting.values()), None)
        return len(self._waiting), None if oldest is None else self._clock() - oldest

    def outage(self) -> dict[str, object] | None:
        """While the bucket fails (None otherwise), for /health: the uploads that wait, the segments lost
        (no copy left, Owncast's file gone), and with copies kept (the VM's pathway), their bytes, their
        bound now and what sets it (VM_COPIES_MB, or STATE_DIR's disk down to its reserve) and, at the rate
        they grew since the outage began, the seconds until the oldest start to go."""
        down_for = self._outage.down_for()
        if down_for is None:
            return None
        count, oldest = self.waiting()
        body: dict[str, object] = {"for_seconds": round(down_for, 1), "uploads_waiting": count,
                                   "oldest_waiting_seconds": None if oldest is None else round(oldest, 1),
                                   "segments_lost": self._outage.lost_count}
        holder = self._holder
        if holder is not None:
            kept = holder.total_bytes
            bound, by = room(holder.folder, kept, holder.max_bytes)
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
        """Upload one file (inside `root`, see read_segment_file); returns how long the successful
        PutObject took and, when `hashed`, the SHA-256 of the bytes it sent (only P2P needs it). With a
        holder and `on_kept`, the file is read and held first, `on_kept` told at once, and that version
        uploaded (what the VM's pathway lists before any bucket has it, what the other buckets send); with a
        holder alone, it is held only once an attempt fails (`_attempts`' `keep`). `parts`: the file's beneath
        `root`, when the caller has them (what the holder reads again).

        Raises SegmentLost when it can never succeed.
        """
        content_type = hls.segment_content_type(path.name)
        if content_type is None:
            raise SegmentLost("bad_type", f"{path} is not a segment type we publish")

        def read() -> tuple[bytes, Stamp | None]:
            return read_segment_stamped(path, self._max_file_bytes, root=root)

        holder = self._holder
        exists = path.exists  # while it waits: Owncast's file is still there (else it goes, and is lost)
        if holder is None:
            # Read again on every attempt: if Owncast deleted the file meanwhile, it is lost.
            return await self._put(key, read, content_type, hls.SEGMENT_CACHE_CONTROL, variant, hashed,
                                   alive=exists)
        if parts is None:
            # By the parts' tuples, not relative_to, which parses and builds two Paths a segment.
            base = (root if root is not None else path.parent).parts
            whole, n = path.parts, len(base)
            parts = whole[n:] if whole[:n] == base and len(whole) > n else (path.name,)
        if on_kept is None:
            # Sent as without a holder, holding nothing while the bucket takes it at once (issue 66 item 3:
            # steering costs nothing per segment while nothing fails); held once an attempt fails (`keep`).
            return await self._put(key, read, content_type, hls.SEGMENT_CACHE_CONTROL, variant, hashed,
                                   None, None, parts, exists)
        first, body = await self._first_read(read, holder, key, parts, hashed, content_type)
        on_kept(first)
        if not first.kept:  # changed while it was read: read again for each attempt, as without a holder
            return await self._put(key, read, content_type, hls.SEGMENT_CACHE_CONTROL, variant, hashed,
                                   alive=exists)
        box: FirstBody = [(body, first.stamp, first.sha256)]
        del body  # the box alone has it, and the first attempt takes it out
        return await self._send_held(key, content_type, variant, first.stamp, box)

    def has(self, key: str) -> bool:
        """The holder holds a version of `key`."""
        return self._holder is not None and self._holder.get(key) is not None

    async def hold(self, path: Path, key: str, parts: tuple[str, ...], *, root: Path | None = None,
                   hashed: bool = False) -> Kept:
        """Read `path` and hold that version now (an upload in flight that held nothing first, once a pathway
        lists what the VM holds: publish/uploads.py's release_held). Raises SegmentLost as upload_file."""
        content_type = hls.segment_content_type(path.name)
        if content_type is None or self._holder is None:
            raise SegmentLost("bad_type", f"{path} is not a segment type we publish")

        def read() -> tuple[bytes, Stamp | None]:
            return read_segment_stamped(path, self._max_file_bytes, root=root)

        return (await self._first_read(read, self._holder, key, parts, hashed, content_type, _held_or_first))[0]

    async def upload_held(self, key: str, variant: str, stamp: Stamp | None = None) -> Uploaded:
        """Upload a segment the holder holds (another bucket's upload of what the first read): its copy,
        or Owncast's file while it is the version held. Raises SegmentLost once neither is there."""
        content_type = hls.segment_content_type(key)
        if content_type is None or self._holder is None:
            raise SegmentLost("bad_type", f"{key} is not a segment type we publish")
        return await self._send_held(key, content_type, variant, stamp, [])

    async def _send_held(self, key: str, content_type: str, variant: str, stamp: Stamp | None,
                         first: FirstBody) -> Uploaded:
        holder = self._holder
        assert holder is not None

        def body() -> tuple[bytes, Stamp | None]:
            data = holder.body(key)
            if data is None:  # read only after a failed attempt, which keeps a copy where it can
                raise SegmentLost(COPY_DROPPED, f"{key}: {_NO_COPY}")
            return data, stamp

        done = await self._put(key, body, content_type, hls.SEGMENT_CACHE_CONTROL, variant, False,
                               on_failed=lambda data, _stamp: holder.keep(key, data),
                               first=first, alive=functools.partial(holder.alive, key))
        holder.landed(key, self.pathway)
        return done

    async def _first_read(self, read: Read, holder: Holder, key: str, parts: tuple[str, ...],
                          hashed: bool, content_type: str, how: HoldRead | None = None) -> tuple[Kept, bytes]:
        """The file read and held once, off the event loop (`how`: _hold_first unless given); out of handles
        or memory, tried again."""
        attempt = 0
        how = how or _hold_first
        while True:
            try:
                return await asyncio.to_thread(how, read, holder, key, parts, hashed, content_type)
            except OSError as err:
                if not is_temporary(err):
                    raise
                self._unreadable.warning("unreadable", "cannot read the file for %s for now (%s); trying again",
                                         key, err.strerror)
            await self._sleep(self._retry.delay(attempt))
            attempt += 1

    async def upload_bytes(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> float:
        """Upload bytes made here (a recording's playlist); retried until it succeeds."""
        return (await self._put(key, lambda: (body, None), content_type, cache_control, None, False,
                                first=[(body, None, None)])).took

    async def _put(
        self, key: str, read: Read, content_type: str, cache_control: str, variant: str | None, hashed: bool,
        on_failed: Callable[[bytes, Stamp | None], object] | None = None, first: FirstBody | None = None,
        keep: tuple[str, ...] | None = None, alive: Alive | None = None,
    ) -> Uploaded:
        upload_id, self._next_id = self._next_id, self._next_id + 1
        waiting = self._waiting
        now = waiting[upload_id] = self._clock()
        if self._late is None and now - next(iter(waiting.values())) >= ARM_AFTER:
            self._arm_late()  # an upload from before waits still
        try:
            return await self._attempts(key, read, content_type, cache_control, variant, hashed, on_failed, first,
                                        keep, alive)
        finally:
            del waiting[upload_id]
            late = self._late
            if late is not None:
                if not waiting:  # none waits: nothing for it to find
                    late.cancel()
                    self._late = None
            elif upload_id == self._told and waiting:  # the one told of is done: the next oldest's turn
                self._arm_late()

    def _arm_late(self) -> None:
        """The timer for the oldest upload waiting (none when none waits, nobody asks: late_after, or it
        was told of already)."""
        after = self.late_after() if self._waiting else None
        if after is None:
            return
        oldest, began = next(iter(self._waiting.items()))
        if oldest == self._told:
            return
        # A hair past the moment, so the evaluation it wakes finds the upload past it (calm_for: strictly).
        delay = max(0.0, began + after - self._clock()) + 0.01
        self._late = asyncio.get_running_loop().call_later(delay, self._late_tell)

    def _late_tell(self) -> None:
        """The timer fired: the oldest upload waiting may be another than the one it was armed for (that
        one done since). Told when it waited late_after; else armed again for it (none left: disarmed;
        told of already: armed again by the next upload to start)."""
        self._late = None
        after = self.late_after() if self._waiting else None
        if after is None:
            return
        oldest, began = next(iter(self._waiting.items()))
        if self._clock() - began < after:
            self._arm_late()
            return
        self._told = oldest  # told once: armed again when it is done (`_put`), for the next oldest
        self.on_late()

    async def _attempts(
        self, key: str, read: Read, content_type: str, cache_control: str, variant: str | None, hashed: bool,
        on_failed: Callable[[bytes, Stamp | None], object] | None = None, first: FirstBody | None = None,
        keep: tuple[str, ...] | None = None, alive: Alive | None = None,
    ) -> Uploaded:
        """`on_failed(body, stamp)`: after an attempt the bucket failed, on a worker thread (the holder keeps a
        copy for the next attempts). `first`: the body the first attempt sends, read already (`read` is
        for the attempts after it). `keep`: the file's parts beneath HLS_DIR, of a segment not held: the
        first attempt the bucket fails holds the version it sent and keeps a copy, which the next attempts
        send (the backlog survives Owncast's cleanup; the VM's pathway serves the copy meanwhile). `alive`:
        whether its bytes are still somewhere, asked while it waits for the bucket (turns.py: an upload with
        nothing left to send goes at once, and is lost, rather than wait out the outage); None: always."""
        attempt = 0
        kept: Stamp | None = None  # the version held and kept after a failed attempt (`keep`)
        waited = False  # the bucket failed an attempt: a loss now is the outage's (OutageLog.lost)
        while True:
            bucket_failed = True
            async with self._slots:
                try:
                    if first and not hashed:  # in memory: no worker thread's hop
                        body, stamp, digest = first.pop()
                    else:
                        body, stamp, digest = await asyncio.to_thread(_read_and_hash, read, hashed)
                except SegmentLost as err:
                    if waited and variant is not None:
                        err.told = self._outage.lost(err.reason)
                    raise
                except OSError as err:  # out of handles or memory (read_segment_file lets only those out)
                    if not is_temporary(err):
                        raise
                    self._unreadable.warning("unreadable", "cannot read the file for %s for now (%s); "
                                             "trying again", key, err.strerror)
                    bucket_failed = False
                else:
                    started = time.perf_counter()
                    try:
                        async with asyncio.timeout(self._attempt_timeout):
                            await self._store.put(key, body, content_type=content_type,
                                                  cache_control=cache_control)
                    except (StoreError, TimeoutError) as err:
                        reason = err.reason if isinstance(err, StoreError) else "Timeout"
                        self.uploads_failed += 1
                        waited = True
                        bounded_reason = bounded(reason, UPLOAD_FAILURE_REASONS)
                        self._metrics.upload_failures.labels(reason=bounded_reason).inc()
                        log.debug("upload of %s failed (attempt %d): %s", key, attempt + 1, reason)
                        self.record(False, reason)
                        if on_failed is not None:
                            await asyncio.to_thread(on_failed, body, stamp)
                        elif keep is not None and kept is None and stamp is not None and self._holder is not None:
                            holder = self._holder
                            if await asyncio.to_thread(holder.hold_kept, key, keep, stamp, body, content_type):
                                kept = stamp
                                read = functools.partial(_kept_or_read, holder, key, stamp, read)
                                alive = functools.partial(holder.alive, key)
                    else:
                        took = time.perf_counter() - started
                        log.debug("uploaded %s (%d bytes) in %.0f ms", key, len(body), took * 1000)
                        if variant is not None:
                            self.last_landed = (key, self._clock())
                            self._metrics.upload_duration.observe(took)
                            self._metrics.segments_uploaded.labels(variant=variant).inc()
                            self._metrics.bytes_uploaded.labels(variant=variant).inc(len(body))
                            self.uploads_done += 1
                        self.record(True)
                        if kept is not None:
                            self._holder.landed(key, self.pathway)  # type: ignore[union-attr]
                        return Uploaded(took, digest, stamp)
            body = b""  # not kept through the wait (FirstBody): the next attempt reads it again
            attempt += 1
            if bucket_failed:
                # The bucket's turn, at once when it works again, or when nothing is left to send.
                await self._turns.wait() if alive is None else await self._turns.wait(alive)
            else:  # not the bucket's turns: the bucket did not fail, this file could not be read for now
                await self._sleep(self._retry.delay(attempt - 1))
