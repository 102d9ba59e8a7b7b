"""The uploads of Owncast's segments: one task per copy, an init section once per run and variant, and
nothing uploaded again that a state restored says is in the bucket already.

Only whole files reach the bucket. A playlist can name a segment Owncast is still writing (ffmpeg PUTs
the playlist without waiting for the segment's answer, docs/owncast.md), so an upload first waits until
Owncast has finished the file (source.writes says when), at most UNFINISHED_LIMIT: a file still being
written then is lost, its gap marked, never uploaded half. After the upload the file must still be the
version that was read (same inode, size and mtime); if Owncast changed it meanwhile it is uploaded
again. A write after that (its writer opened it again, issue 67) makes it unfinished again: it is
followed (rewrites.Rewrites: waited for, and uploaded again if its bytes changed), also when its segment is
about to be listed, which then waits for that. So the bucket, the hash carried for P2P, recordings and
clips all hold the file as Owncast left it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Set as AbstractSet
from pathlib import Path
from typing import Protocol

from ..bucket.uploader import Kept, SegmentLost, Uploaded, Uploader
from ..files import MAX_FILE_BYTES, Refused, Stamp, read_stamped, stamp_beneath
from ..metrics import Metrics
from ..playlist import hls
from ..source.owncast import SourceSegment, stream_id
from ..source.writes import Finish
from .rewrites import Rewrites

log = logging.getLogger(__name__)

# A body Owncast receives over loopback is in within milliseconds of the playlist that names it (10 ms
# measured for a 465 KB passthrough segment). A file still being written this long after has a stuck
# writer (ffmpeg hung in the middle of a PUT); its slot holds every variant's listing meanwhile, so it is
# given up then, well inside Owncast's cleanup (35 s at least) and a few segments of a player's buffer.
UNFINISHED_LIMIT = 10.0
# Uploads of one file, the first included: a file changed during each of them is being rewritten.
MAX_UPLOADS = 3
_TOLD_STREAMS = 64  # streams already told of in the log (a bounded memory)


class WriteWatch(Protocol):
    """When Owncast has finished writing a file, and each write heard after (source.writes.Writes)."""

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish: ...

    def follow(self, hook: Callable[[Path | None], None]) -> None:
        """`hook(path)` at each write heard to a media file (None: events were lost)."""


class FinishWatch(Protocol):
    """When Owncast has finished writing a file (writing.WritesWaited, over a WriteWatch)."""

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish: ...


async def _already(done: Uploaded) -> Uploaded:
    return done


Ready = asyncio.Future[bytes | None]


def ready_when_uploaded(ready: Ready, task: asyncio.Future[Uploaded]) -> None:
    """The task's done-callback: `ready` follows it (unless the copy was kept before)."""
    if ready.done():
        return
    if task.cancelled():
        ready.cancel()
    elif (err := task.exception()) is not None:
        ready.set_exception(err)
    else:
        ready.set_result(task.result().sha256)


def _retrieved(future: Ready) -> None:
    if not future.cancelled():
        future.exception()


def _ready_when_kept(ready: Ready, kept: Kept) -> None:
    """Its first read: listed on the VM's pathway at once only if the VM kept the copy (it would answer
    404 for one it could not keep: too large, a full disk); else once uploaded, as without steering."""
    if kept.kept and not ready.done():
        ready.set_result(kept.sha256)


def init_section_name(segment: str, init: str, run: int) -> str:
    """The name of the init section `init` (Owncast's) of `segment`'s transcoder run in the bucket,
    where the VM's pathway lists it too. Init sections keep their name across transcoder runs; the
    run's id keeps keys unique: stream-<shortid>-<init>, as Owncast names the run's segments. Never the
    shortid first: its alphabet has '_' and '-', and every route of the VM's pathway (http/pathway.py,
    cloudflared.yml.example, deploy/nginx-cache.conf) takes a name beginning with a letter or digit, as
    Owncast's are: a run whose shortid began so had its init section answered 404 there."""
    shortid = stream_id(segment)
    return f"stream-{shortid}-{init}" if shortid is not None else f"run{run}-{init}"


class Uploads:
    def __init__(self, uploader: Uploader, writes: FinishWatch, metrics: Metrics, *, hls_dir: Path, key_prefix: str,
                 segment_hashes: bool, unfinished_limit: float = UNFINISHED_LIMIT) -> None:
        self._uploader = uploader
        self._writes = writes
        self._metrics = metrics
        self._hls_dir = hls_dir
        self._prefix = key_prefix
        self._hashes = segment_hashes  # P2P on: the SHA-256 of each segment's bytes, for viewers to check
        self._limit = unfinished_limit
        self._restored: set[str] = set()  # keys uploaded before a restart, not listed then
        self._told: deque[str] = deque(maxlen=_TOLD_STREAMS)
        # Each init section's upload, once per run and variant (its key names both), and when the VM kept it.
        self._inits: dict[str, asyncio.Task[Uploaded]] = {}
        self._inits_kept: dict[str, Ready] = {}
        # Every segment upload that landed, and the file written again after it (its writer came back).
        self.rewrites = Rewrites(hls_dir, self.rewritten, metrics)

    @property
    def restored(self) -> AbstractSet[str]:
        """Keys a restored state says were uploaded and not listed yet (the publisher's memory saves them)."""
        return self._restored

    def restore(self, keys: AbstractSet[str]) -> None:
        """A restored state's uploaded keys: not uploaded again when Owncast lists them."""
        self._restored = set(keys)

    def give_up_restored(self) -> list[str]:
        """The restored keys, forgotten here (they are never listed: continuing above a state)."""
        keys, self._restored = sorted(self._restored), set()
        return keys

    def key(self, index: int, name: str) -> str:
        return hls.object_key(self._prefix, index, name)

    @property
    def keeping(self) -> bool:
        """The VM keeps its own copy of each file (content steering): a copy may be listed once kept."""
        return self._uploader.keeps

    def inits(self) -> list[asyncio.Task[Uploaded]]:
        """Every init section's upload (the publisher cancels them at close)."""
        return list(self._inits.values())

    def start(self, index: int, seg: SourceSegment, run: int) -> tuple[asyncio.Task[Uploaded], Ready, str, str | None]:
        """The upload of `seg`, variant `index`'s (after its init section's): the task, when it may be
        listed (`ready`: its SHA-256, once uploaded, or once kept by the VM), its key and the init section's."""
        folder = self._hls_dir / str(index)
        init_key: str | None = None
        init_task: asyncio.Task[Uploaded] | None = None
        init_kept: Ready | None = None
        if seg.init_name is not None:
            init_key = self.key(index, init_section_name(seg.name, seg.init_name, run))
            init_task = self._inits.get(init_key)
            if init_task is None:
                init_kept = self._inits_kept[init_key] = asyncio.get_running_loop().create_future()
                init_task = asyncio.ensure_future(  # never shared by peers: no hash
                    self._whole(folder / seg.init_name, init_key, index, hashed=False, ready=init_kept))
                init_task.add_done_callback(functools.partial(ready_when_uploaded, init_kept))
                # Awaited only while the VM keeps copies: its error is the init task's, reported through
                # the segments' uploads, not logged again as "Future exception was never retrieved".
                init_kept.add_done_callback(_retrieved)
                self._inits[init_key] = init_task
            init_kept = self._inits_kept.get(init_key)
        ready: Ready = asyncio.get_running_loop().create_future()
        seg_key = self.key(index, seg.name)
        if seg_key in self._restored:  # uploaded before a restart, not yet listed then
            self._restored.discard(seg_key)
            # Its bytes are not at hand: no hash, so viewers take it from the bucket, never from peers.
            task: asyncio.Task[Uploaded] = asyncio.ensure_future(_already(Uploaded(0.0, None)))
        else:
            task = asyncio.ensure_future(self._upload(folder / seg.name, seg_key, index, init_task, init_kept,
                                                      ready))
        task.add_done_callback(functools.partial(ready_when_uploaded, ready))
        return task, ready, seg_key, init_key

    def again(self, index: int, key: str) -> asyncio.Task[Uploaded]:
        """The upload of a listed segment whose upload had not landed before a restart: from Owncast's
        file if it is still there (the VM's copies do not outlive a restart)."""
        name = key.rpartition("/")[2]
        return asyncio.ensure_future(self._whole(self._hls_dir / str(index) / name, key, index, hashed=False))

    def late(self, index: int, key: str) -> asyncio.Task[Uploaded]:
        """The upload of a segment given up as a gap in its playlist before a restart (late.LateCopies):
        once Owncast has finished its file, as any upload."""
        name = key.rpartition("/")[2]
        return asyncio.ensure_future(self._whole(self._hls_dir / str(index) / name, key, index, hashed=True))

    async def rewritten(self, index: int, path: Path, key: str, previous: Uploaded) -> Uploaded:
        """`path`, uploaded as `previous`, was written again (rewrites.Rewrites): once Owncast has finished it
        again, uploaded again if its bytes changed; else `previous` (with the file's stamp now)."""
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
                      init_kept: Ready | None, ready: Ready) -> Uploaded:
        """Its init section first: kept (the VM's pathway lists the segment once both are kept) and
        uploaded (the bucket's once both are in the bucket)."""
        try:
            if init is not None:
                await asyncio.shield(init_kept if self.keeping and init_kept is not None else init)
            # Hashed whether P2P is on or not: `changed` compares the file with it when its stamp moved.
            done = await self._whole(path, key, index, hashed=True, ready=ready)
            if init is not None:
                await asyncio.shield(init)  # shared by every segment of the run
            return done
        except SegmentLost as err:
            if init is not None and init.done() and not init.cancelled() and init.exception() is not None:
                raise SegmentLost("init_lost", f"its init section could not be uploaded: {err}") from err
            raise

    async def _whole(self, path: Path, key: str, index: int, *, hashed: bool, ready: Ready | None = None) -> Uploaded:
        """Upload `path` once Owncast has finished it, and again while it changed during the upload."""
        variant = str(index)
        for attempt in range(MAX_UPLOADS):
            finish = await self._writes.finished(path, self._limit, lambda: self._unfinished(path, index))
            if finish is Finish.UNFINISHED:
                raise SegmentLost("unfinished", f"{path} was still being written {self._limit:g} s after "
                                  "Owncast listed it; not uploaded half")
            if finish is Finish.MISSING:
                raise SegmentLost("deleted", f"{path} was never there or deleted before it was uploaded")
            done = await self._uploader.upload_file(
                path, key, variant, root=self._hls_dir, hashed=hashed,
                on_kept=None if ready is None else functools.partial(_ready_when_kept, ready))
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


def unchanged(hls_dir: Path, path: Path, read: Stamp | None) -> bool:
    """The file is still the version read (or gone: what was read was finished when it was read)."""
    if read is None:
        return False  # it changed while it was read
    try:
        now = stamp_beneath(hls_dir, path.relative_to(hls_dir).parts)
    except (OSError, Refused):
        return True  # not readable now: nothing says it changed; the next read would refuse it
    return now is None or now == read
