"""The uploads of Owncast's segments: one task per copy, an init section once per run and variant. Only
whole files reach the bucket: an upload waits until Owncast has finished the file, at most
UNFINISHED_LIMIT, and is made again if it changed meanwhile (docs/how-it-works.md, "Whole segments only").
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..bucket.uploader import Kept, SegmentLost, Uploaded, Uploader
from ..files import MAX_FILE_BYTES, Refused, read_stamped, stamp_beneath
from ..metrics import Metrics
from ..playlist import hls
from ..source.owncast import SourceSegment, stream_id
from ..source.writes import Finish
from .rewrites import Rewrites, unchanged
from .slots import Copy

if TYPE_CHECKING:  # config.py takes UNFINISHED_LIMIT from here
    from .config import PublisherConfig

log = logging.getLogger(__name__)

# Owncast has a body within milliseconds of the playlist that names it: a file still being written this
# long after has a stuck writer. Given up well inside Owncast's cleanup (35 s at least).
UNFINISHED_LIMIT = 10.0
# Uploads of one file, the first included: a file changed during each of them is being rewritten.
MAX_UPLOADS = 3
_TOLD_STREAMS = 64  # streams already told of in the log (a bounded memory)


class WriteWatch(Protocol):
    """When Owncast has finished writing a file, and each write heard after (source.writes.Writes)."""

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish: ...

    def follow(self, hook: Callable[[Path | None], None]) -> None:
        """`hook(path)` at each write heard to a media file (None: events were lost)."""


class WritesWaited:
    """The uploads' WriteWatch, and which files an upload waits on now: such a copy holds only its own
    variant once another copy of its slot is in the bucket (lister.py)."""

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


async def _already(done: Uploaded) -> Uploaded:
    return done


Ready = asyncio.Future[bytes | None]


class _Ready:
    """When a copy may be listed (`ready`: its SHA-256, or None): once held while a pathway lists what the
    VM holds, else once some bucket's upload landed; an error once every upload failed."""

    def __init__(self, ready: Ready, lists_held: Callable[[], bool] | None,
                 waiting: set[_Ready] | None = None) -> None:
        self.ready = ready
        self._lists_held = lists_held
        self._waiting = waiting
        self._sha256: bytes | None = None
        self._held = False
        self._open = 0

    def kept(self, kept: Kept) -> None:
        """The first read: held, unless the file changed while it was read."""
        self._sha256 = kept.sha256
        if self._lists_held is None or not kept.kept or self.ready.done():
            return
        self._held = True
        if self._lists_held():
            self.ready.set_result(kept.sha256)
        elif self._waiting is not None:
            self._waiting.add(self)  # until `ready` is settled (release, _done)

    def release(self) -> None:
        if self._held and not self.ready.done():
            self.ready.set_result(self._sha256)
        self._leave()

    def _leave(self) -> None:
        if self._waiting is not None:
            self._waiting.discard(self)

    def track(self, task: asyncio.Future[Any]) -> None:
        self._open += 1
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._open -= 1
        ready = self.ready
        if ready.done():
            return
        if not task.cancelled() and task.exception() is None:
            result = task.result()
            ready.set_result(result.sha256 if isinstance(result, Uploaded) and result.sha256 else self._sha256)
        elif self._open == 0:
            if task.cancelled():
                ready.cancel()
            else:
                ready.set_exception(task.exception() or RuntimeError("upload failed"))
                ready.exception()  # retrieved: the lister reports it when it comes to its slot
        if ready.done():
            self._leave()


def ready_after(task: asyncio.Future[Uploaded]) -> Ready:
    """A copy's `ready` that follows `task` alone (the follow of a file written again: Lister._fresh)."""
    readiness = _Ready(asyncio.get_running_loop().create_future(), None)
    readiness.track(task)
    return readiness.ready


def retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _first_read_failed(first: asyncio.Future[Kept], task: asyncio.Future[Any]) -> None:
    """The first bucket's upload ended before its first read: every other bucket's ends the same way."""
    if first.done():
        return
    if task.cancelled():
        first.cancel()
    elif (err := task.exception()) is not None:
        first.set_exception(err)
        first.exception()  # retrieved: the upload's own outcome says it (the other buckets' raise it too)


def _told(future: asyncio.Future[Kept], kept: Kept) -> None:
    if not future.done():
        future.set_result(kept)


def _first_read_told(future: asyncio.Future[Kept], readiness: _Ready, kept: Kept) -> None:
    """A segment's first read, told to its readiness and to the other buckets' uploads at once."""
    readiness.kept(kept)
    _told(future, kept)


def init_section_name(segment: str, init: str, run: int) -> str:
    """The bucket's name of `segment`'s run's init section: stream-<shortid>-<init> (init sections keep
    their name across runs). Never the shortid first: it may begin with '_' or '-', and the VM's routes
    take names beginning with a letter or digit."""
    shortid = stream_id(segment)
    return f"stream-{shortid}-{init}" if shortid is not None else f"run{run}-{init}"


class Uploads:
    def __init__(self, config: PublisherConfig, uploader: Uploader, writes: WritesWaited, metrics: Metrics, *,
                 others: Mapping[str, Uploader] | None = None) -> None:
        """`uploader`: the first bucket's; `others`: every other bucket's, by pathway ID."""
        self._uploader = uploader
        self._others = dict(others or {})
        # A copy may be listed once the VM holds it: asked at every segment.
        self.keeping = config.pathways.held and uploader.holds
        self._writes = writes
        self._metrics = metrics
        self._hls_dir = config.hls_dir
        self._prefix = config.key_prefix
        self._limit = config.unfinished_limit
        self.restored: set[str] = set()  # keys a restored state says were uploaded, not listed
        self._lists_held = config.pathways.lists_held
        self._held_waiting: set[_Ready] = set()  # held, listed once a pathway lists what the VM holds
        self._holding: set[asyncio.Future[Kept | None]] = set()  # uploads in flight being held (release_held)
        self._told: deque[str] = deque(maxlen=_TOLD_STREAMS)
        # Told (variant, key, run) of a segment listed before the first bucket had it, lost since.
        self.on_lost_listed: Callable[[int, str, int], None] | None = None
        # Each init section's upload (its key names run and variant), first read, other buckets' uploads.
        self._inits: dict[str, asyncio.Task[Uploaded]] = {}
        self._inits_kept: dict[str, asyncio.Future[Kept]] = {}
        self._inits_other: dict[tuple[str, str], asyncio.Future[Uploaded]] = {}
        self.rewrites = Rewrites(config.hls_dir, self.rewritten, metrics)

    def key(self, index: int, name: str) -> str:
        return hls.object_key(self._prefix, index, name)

    def release_held(self, unready: Iterable[tuple[int, Copy]] = ()) -> None:
        """A pathway lists what the VM holds from now on: every copy held is ready, `unready` ones held."""
        for readiness in list(self._held_waiting):
            readiness.release()
        if not self.keeping or self._others:  # with other buckets every copy is held first
            return
        for index, copy in unready:
            init_kept = self._inits_kept.get(copy.init_key) if copy.init_key is not None else None
            path = self._hls_dir / str(index) / copy.source.name
            task = asyncio.ensure_future(self._hold_now(path, copy.key, index, init_kept))
            self._holding.add(task)
            task.add_done_callback(functools.partial(self._held_now, copy.ready))

    def _held_now(self, ready: Ready, task: asyncio.Future[Kept | None]) -> None:
        """Held: ready, while a pathway still lists what the VM holds."""
        self._holding.discard(task)
        if task.cancelled() or task.exception() is not None or ready.done():
            return
        kept = task.result()
        if kept is not None and kept.kept and self._lists_held():
            ready.set_result(kept.sha256)

    def inits(self) -> list[asyncio.Future[Any]]:
        """Every init section's uploads, and the holds under way (cancelled at close)."""
        return [*self._inits.values(), *self._inits_other.values(), *self._holding]

    def start(self, index: int, seg: SourceSegment, run: int, now: float) -> Copy:
        """The copy of `seg` seen `now`, its uploads started (each after its init section's)."""
        folder = self._hls_dir / str(index)
        init_key: str | None = None
        init_task: asyncio.Task[Uploaded] | None = None
        init_kept: asyncio.Future[Kept] | None = None
        loop = asyncio.get_running_loop()
        if seg.init_name is not None:
            init_key = self.key(index, init_section_name(seg.name, seg.init_name, run))
            init_task = self._inits.get(init_key)
            if init_task is None:
                init_kept = self._inits_kept[init_key] = loop.create_future()  # an error: _first_read_failed
                init_task = asyncio.ensure_future(  # never shared by peers: no hash
                    self._whole(folder / seg.init_name, init_key, index, hashed=False,
                                on_kept=functools.partial(_told, init_kept)))
                init_task.add_done_callback(functools.partial(_first_read_failed, init_kept))
                self._inits[init_key] = init_task
                for pid, uploader in self._others.items():
                    other = asyncio.ensure_future(self._elsewhere(uploader, init_key, index, init_kept, None))
                    other.add_done_callback(retrieved)
                    self._inits_other[(pid, init_key)] = other
            init_kept = self._inits_kept.get(init_key)
        ready: Ready = loop.create_future()
        readiness = _Ready(ready, self._lists_held if self.keeping else None, self._held_waiting)
        seg_key = self.key(index, seg.name)
        others: dict[str, asyncio.Future[Any]] = {}
        if seg_key in self.restored:  # uploaded before a restart, not yet listed then
            self.restored.discard(seg_key)
            # Its bytes are not at hand: no hash, so viewers take it from the bucket, never from peers.
            task: asyncio.Task[Uploaded] = asyncio.ensure_future(_already(Uploaded(0.0, None)))
        elif not self._others:
            # Held first while a pathway lists what the VM holds; else only once an attempt fails.
            task = asyncio.ensure_future(self._upload(folder / seg.name, seg_key, index, init_task, init_kept,
                                                      readiness.kept if self.keeping and self._lists_held()
                                                      else None))
        else:
            kept: asyncio.Future[Kept] = loop.create_future()  # an error set is retrieved (_first_read_failed)
            task = asyncio.ensure_future(self._upload(folder / seg.name, seg_key, index, init_task, init_kept,
                                                      functools.partial(_first_read_told, kept, readiness)))
            task.add_done_callback(functools.partial(_first_read_failed, kept))
            for pid, uploader in self._others.items():
                init_other = self._inits_other.get((pid, init_key)) if init_key is not None else None
                others[pid] = asyncio.ensure_future(self._elsewhere(uploader, seg_key, index, kept, init_other))
                readiness.track(others[pid])
        readiness.track(task)
        task.add_done_callback(functools.partial(self._lost_after_listing, index, seg_key, run, ready))
        return Copy(seg, seg_key, init_key, now, task, ready, others)

    def _lost_after_listing(self, index: int, key: str, run: int, ready: Ready,
                            task: asyncio.Future[Uploaded]) -> None:
        """The first bucket's upload of a segment listed before it landed failed for good."""
        if task.cancelled() or not ready.done() or ready.cancelled() or ready.exception() is not None:
            return  # not listed before (the lister tells that loss when it comes to its slot), or closing
        err = task.exception()
        if err is None:
            return
        reason = err.reason if isinstance(err, SegmentLost) else "error"
        self._metrics.segments_lost.labels(variant=str(index), reason=reason).inc()
        # One an outage's lines count already is not said again: a long outage loses hundreds.
        log.log(logging.DEBUG if isinstance(err, SegmentLost) and err.told else logging.WARNING,
                "variant %d: %s, listed before the bucket had it, is lost (%s): %s; every pathway lists a "
                "gap for it", index, key, reason, err)
        if self.on_lost_listed is not None:
            self.on_lost_listed(index, key, run)

    async def _hold_now(self, path: Path, key: str, index: int, init_kept: asyncio.Future[Kept] | None
                        ) -> Kept | None:
        """None when it cannot be held now: it is listed once its upload landed."""
        try:
            if init_kept is not None:
                await asyncio.shield(init_kept)
            # As a failed attempt kept it, else once Owncast has finished the file (never half).
            if not self._uploader.has(key) and await self._writes.finished(path, self._limit) is Finish.UNFINISHED:
                return None
            return await self._uploader.hold(path, key, (str(index), path.name), root=self._hls_dir, hashed=True)
        except (SegmentLost, OSError):
            return None

    def again(self, pathway: str, index: int, key: str) -> asyncio.Future[Uploaded] | None:
        """The upload to `pathway`'s bucket of a segment listed before a restart, not landed."""
        uploader = self._uploader if pathway == hls.BUCKET_PATHWAY else self._others.get(pathway)
        if uploader is None:
            return None
        name = key.rpartition("/")[2]
        return asyncio.ensure_future(self._whole(self._hls_dir / str(index) / name, key, index, hashed=False,
                                                 uploader=uploader))

    async def _elsewhere(self, uploader: Uploader, key: str, index: int, kept: asyncio.Future[Kept],
                         init: asyncio.Future[Uploaded] | None) -> Uploaded:
        """Another bucket's upload of what the first read (after its init section's there)."""
        first = await asyncio.shield(kept)
        if init is not None:
            await asyncio.shield(init)
        return await uploader.upload_held(key, str(index), first.stamp)

    def late(self, index: int, key: str) -> asyncio.Task[Uploaded]:
        """The upload of a segment given up as a gap before a restart (late.LateCopies)."""
        name = key.rpartition("/")[2]
        return asyncio.ensure_future(self._whole(self._hls_dir / str(index) / name, key, index, hashed=True))

    async def rewritten(self, index: int, path: Path, key: str, previous: Uploaded) -> Uploaded:
        """`path`, uploaded as `previous`, was written again: uploaded again once finished, if changed."""
        finish = await self._writes.finished(path, self._limit)
        if finish is Finish.UNFINISHED:
            raise SegmentLost("unfinished", f"{path} was written again after its upload and is still being "
                              f"written {self._limit:g} s later; the bucket keeps the version before")
        if finish is Finish.MISSING:
            raise SegmentLost("deleted", f"{path} was deleted after it was written again")
        parts = path.relative_to(self._hls_dir).parts
        try:
            now = stamp_beneath(self._hls_dir, parts)
        except (OSError, Refused):
            now = None
        if now is not None and now == previous.stamp:
            return previous  # the version uploaded after all (opened and closed, nothing written)
        try:
            data, stamp = await asyncio.to_thread(read_stamped, self._hls_dir, parts, MAX_FILE_BYTES)
        except (OSError, Refused):
            data, stamp = b"", None  # the upload reads it again, and says why it cannot
        if stamp is not None and hashlib.sha256(data).digest() == previous.sha256:
            return previous._replace(stamp=stamp)  # the same bytes (a `touch`): nothing to upload
        return await self._whole(path, key, index, hashed=True)

    async def _upload(self, path: Path, key: str, index: int, init: asyncio.Task[Uploaded] | None,
                      init_kept: asyncio.Future[Kept] | None, on_kept: Callable[[Kept], None] | None) -> Uploaded:
        """After its init section: held (for the VM's pathway) or uploaded (for the bucket's)."""
        try:
            if init is not None:
                await asyncio.shield(init_kept if self.keeping and init_kept is not None else init)
            # Hashed whether P2P is on or not: `changed` compares the file with it when its stamp moved.
            done = await self._whole(path, key, index, hashed=True, on_kept=on_kept)
            if init is not None:
                await asyncio.shield(init)  # shared by every segment of the run
            return done
        except SegmentLost as err:
            if init is not None and init.done() and not init.cancelled() and init.exception() is not None:
                raise SegmentLost("init_lost", f"its init section could not be uploaded: {err}") from err
            raise

    async def _whole(self, path: Path, key: str, index: int, *, hashed: bool,
                     on_kept: Callable[[Kept], None] | None = None, uploader: Uploader | None = None) -> Uploaded:
        """Upload `path` once Owncast has finished it, and again while it changed during the upload."""
        variant = str(index)
        uploader = uploader or self._uploader
        for attempt in range(MAX_UPLOADS):
            finish = await self._writes.finished(path, self._limit, lambda: self._unfinished(path, index))
            if finish is Finish.UNFINISHED:
                raise SegmentLost("unfinished", f"{path} was still being written {self._limit:g} s after "
                                  "Owncast listed it; not uploaded half")
            if finish is Finish.MISSING:
                raise SegmentLost("deleted", f"{path} was never there or deleted before it was uploaded")
            done = await uploader.upload_file(  # `path` is <HLS_DIR>/<variant>/<a safe name> (owncast.py)
                path, key, variant, root=self._hls_dir, hashed=hashed,
                on_kept=None if attempt else on_kept, parts=(variant, path.name))
            if unchanged(self._hls_dir, path, done.stamp):
                if hashed:  # a segment: a write after this one makes it unfinished again
                    self.rewrites.landed(index, path, key, done)
                return done
            self._metrics.segment_reuploads.labels(variant=variant).inc()
            log.warning("variant %d: %s changed while it was uploaded (upload %d of at most %d); uploading it "
                        "again before it is listed", index, path.name, attempt + 1, MAX_UPLOADS)
        raise SegmentLost("unfinished", f"{path} changed during each of its {MAX_UPLOADS} uploads")

    def _unfinished(self, path: Path, index: int) -> None:
        """Owncast listed `path` while still writing it: counted, and said once per stream."""
        self._metrics.segments_unfinished.labels(variant=str(index)).inc()
        stream = stream_id(path.name) or path.parent.name
        if stream in self._told:
            return
        self._told.append(stream)
        log.info("variant %d: Owncast listed %s while still writing it (large segments, e.g. video "
                 "passthrough, take longer to write); uploads wait until Owncast has finished each file. "
                 "Counted in hls_broadcaster_segments_unfinished_total; said once per stream",
                 index, path.name)
