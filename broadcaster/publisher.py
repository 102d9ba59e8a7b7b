"""Turns Owncast's playlists into ours: upload first, list second, in Owncast's order per variant.

Uploads run in parallel (across variants and across a backlog); a segment that finishes early waits
for the ones before it. What a new stream, a gap or the end of a stream looks like in Owncast's files
is decided here; what that means for the playlist (discontinuities, ENDLIST, the window) is the
ManifestGenerator's business.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import hls
from . import state as state_io
from .lograte import RateLimitedLog
from .manifest import (
    MAX_RESTORED_TARGET, ListedSegment, ManifestGenerator, Removed, Rendered, SegmentRejected, render_master,
)
from .metrics import Metrics
from .mirror import PlaylistMirror
from .owncast import SourcePlaylist, SourceSegment, SourceVariant, stream_id
from .recorder import Recorder
from .state import StateFile
from .stream_state import StreamState
from .uploader import SegmentLost, Uploader
from .urls import PublicUrls, SegmentUrls

log = logging.getLogger(__name__)

_SEEN_LIMIT = 4096  # names remembered per variant, far more than Owncast ever lists at once
# Names saved across a restart: Owncast lists at most ~25 per variant (plus its offline tail), so
# older names cannot come back; keeping the state small keeps its fsync on the listing path cheap.
_SEEN_SAVED = 200
# Bounds on what a saved state may hold, far above what the service writes: more is not ours.
_MAX_VARIANTS = 100
_MAX_RUNS = 1_000_000  # Owncast transcoder runs seen over the service's life, one per stream start
_MAX_UPLOADED = 100_000


# A segment position, the same in every variant: (Owncast transcoder run, Owncast's sequence number).
# ffmpeg numbers all variants of one run in lockstep, so this key lines variants up (6.2.4).
SlotKey = tuple[int, int]
_END = 1 << 62  # an end-of-stream marker sorts after every segment of its run


@dataclass(slots=True)
class _Copy:
    """One variant's copy of a slot, being uploaded."""

    source: SourceSegment
    key: str
    init_key: str | None
    seen_at: float  # monotonic
    task: asyncio.Task[float]


@dataclass(slots=True)
class _Slot:
    key: SlotKey
    copies: dict[int, _Copy] = field(default_factory=dict)
    discontinuity: bool = False  # Owncast put EXT-X-DISCONTINUITY before it


@dataclass(slots=True)
class _Variant:
    index: int
    generator: ManifestGenerator | None = None
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    inits: dict[str, asyncio.Task[float]] = field(default_factory=dict)  # key -> upload
    first: dict[int, int] = field(default_factory=dict)  # run -> first Owncast number it joined with
    last_key: SlotKey | None = None
    last_media_sequence: int = -1
    restarts: int = 0  # times Owncast's numbering went back (runs without a stream id in names)
    source_ended: bool = False
    last_new_segment: float | None = None  # monotonic, Owncast listed something new
    last_listed: float | None = None  # monotonic, we listed something
    created: float = 0.0  # monotonic


# (variant, media sequence, Owncast's segment, the URL listed), once the listing is visible.
ListedHook = Callable[[int, int, SourceSegment, str], None]
_Event = tuple[int, int, SourceSegment, float, str]  # a listing not yet visible: ..., seen_at, URL
RemovedHook = Callable[[list[Removed]], None]
_SLOW_RATIO = 1.0  # uploads taking longer than the media they carry cannot keep up


def _number_key(key: str, what: str, digits: int) -> int:
    """A saved object's key that must be a number (JSON keys are text)."""
    if not (key.isascii() and key.isdigit() and len(key) <= digits):
        raise ValueError(f"{what} numbered {state_io.describe(key)} is not one of ours")
    return int(key)


async def _already(took: float) -> float:
    return took


class Publisher:
    def __init__(
        self,
        *,
        hls_dir: Path,
        uploader: Uploader,
        metrics: Metrics,
        key_prefix: str,
        public_url: str,
        window_seconds: float,
        target_duration: int | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_listed: ListedHook | None = None,
        state: StateFile | None = None,
        first_sequence: int = 0,
        on_removed: RemovedHook | None = None,
        recorder: Recorder | None = None,
        extra_state: Callable[[], dict[str, object]] | None = None,
        can_block_reload: bool = False,
        urls: SegmentUrls | None = None,
        mirror: PlaylistMirror | None = None,
    ) -> None:
        self._hls_dir = hls_dir
        self._uploader = uploader
        self._metrics = metrics
        self._prefix = key_prefix.strip("/")
        self._urls = urls or PublicUrls(public_url)
        self._window = window_seconds
        self._target = target_duration or None
        self._wall = wall_clock
        self._mono = monotonic
        self._on_listed = on_listed
        self._variants: dict[int, _Variant] = {}
        self._runs: dict[str, int] = {}  # Owncast run name -> order
        self._slots: dict[SlotKey, _Slot] = {}
        self._order: list[SlotKey] = []  # undecided slots, sorted
        self._decided: SlotKey = (-1, -1)  # every slot up to here is listed or dropped
        # Copies in undecided slots, kept as a running count: summing the slots on every new segment
        # made one long playlist quadratic.
        self._queued = 0
        self._last_run: int | None = None  # run of the last listed slot
        self._master_variants: list[SourceVariant] | None = None
        self._masters: dict[str, Rendered] = {}  # by variant file name: /live/'s and Owncast's /hls/
        self._independent = True
        self._closed = False
        self._next_sequence = first_sequence
        # What clients see: renderings already saved to STATE_DIR (a crash must not forget a number
        # a client has seen), with the listing events they contain.
        self._state = state
        self._visible: dict[int, Rendered] = {}
        self._changed = asyncio.Event()
        self.held_requests = 0  # in wait_for_sequence now (read by /metrics)
        self._released = False  # stopping: held requests are answered at once
        self._unpublished: list[_Event] = []
        self._dirty = asyncio.Event()
        self._saver: asyncio.Task[None] | None = None
        self._saving: asyncio.Future[None] | None = None  # the save running in a worker thread
        self._state_error: str | None = None
        self._restored_uploads: set[str] = set()
        self._on_removed = on_removed
        self._recorder = recorder
        self._extra_state = extra_state
        self._can_block = can_block_reload
        self._upload_ratio = 0.0  # moving average of (PutObject time / segment duration)
        self._mirror = mirror
        self._input_log = RateLimitedLog(log)

    # -- input from the watcher --------------------------------------------------------------------

    def on_master(self, variants: list[SourceVariant]) -> None:
        if variants != self._master_variants:
            self._master_variants = variants
            self._masters.clear()
            log.info("Owncast announces %d variant(s): %s", len(variants), [v.index for v in variants])

    def on_variant_playlist(self, index: int, playlist: SourcePlaylist) -> None:
        if self._closed:
            return
        v = self._variants.get(index)
        if v is None:
            v = self._variants[index] = _Variant(index, created=self._mono())
            log.info("variant %d appeared", index)
        for name, why in playlist.rejected:
            if name not in v.seen:
                self._remember(v, name)
                self._metrics.input_rejected.labels(reason="unsafe_name").inc()
                shown = name if len(name) <= 200 else name[:200] + "..."
                # One line per variant per 30 s: a playlist can list hundreds of such names.
                self._input_log.warning(f"unsafe_name:{index}", "skipping %r in %s/stream.m3u8: %s",
                                        shown, index, why)
        stream = [s for s in playlist.segments if not s.is_offline_clip]
        if self._target is None and stream:
            # Owncast's offline clip (8 s) and idle transcoder (5 s) say nothing about the stream's own
            # segment length, so only real stream segments decide the one target duration.
            self._target = hls.target_duration_for(playlist.target_duration)
            self._independent = playlist.independent_segments
            log.info("target duration fixed at %ds (Owncast advertises %ds)", self._target, playlist.target_duration)
        if self._target is not None and v.generator is None:
            v.generator = ManifestGenerator(self._target, self._window, independent_segments=self._independent,
                                            can_block_reload=self._can_block)
        if playlist.media_sequence < v.last_media_sequence:
            v.restarts += 1  # Owncast restarted its transcoder: a new run
        v.last_media_sequence = playlist.media_sequence

        now = self._mono()
        for seg in playlist.segments:
            if seg.name in v.seen:
                continue
            self._remember(v, seg.name)
            if seg.is_offline_clip:
                log.info("variant %d: Owncast shows its offline clip %s; not published", index, seg.name)
            elif v.generator is not None:
                self._add(v, seg, playlist.media_sequence + seg.position, now)
        # Owncast's offline tail ends with ENDLIST; its idle transcoder only lists offline clips.
        ended = playlist.ended or (bool(playlist.segments) and playlist.segments[-1].is_offline_clip)
        if ended and not v.source_ended and v.last_key is not None:
            self._insert(_Slot((v.last_key[0], _END)))
        v.source_ended = ended
        self._advance()

    def _remember(self, v: _Variant, name: str) -> None:
        v.seen[name] = None
        if len(v.seen) > _SEEN_LIMIT:
            v.seen.popitem(last=False)

    def _run_of(self, v: _Variant, seg: SourceSegment) -> int:
        name = stream_id(seg.name) or f"run-{v.restarts}"
        return self._runs.setdefault(name, len(self._runs))

    def _add(self, v: _Variant, seg: SourceSegment, number: int, now: float) -> None:
        key = (self._run_of(v, seg), number)
        self._metrics.segments_seen.labels(variant=str(v.index)).inc()
        v.last_new_segment = now
        if key <= self._decided:
            # Its slot was already listed (or dropped) in the other variants; it cannot join late.
            self._metrics.segments_lost.labels(variant=str(v.index), reason="late").inc()
            log.warning("variant %d: %s arrived after its slot was decided; not listed", v.index, seg.name)
            return
        v.first.setdefault(key[0], key[1])
        v.last_key = key if v.last_key is None else max(v.last_key, key)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._insert(_Slot(key))
        slot.discontinuity |= seg.discontinuity
        folder = self._hls_dir / str(v.index)
        init_key: str | None = None
        init_task: asyncio.Task[float] | None = None
        if seg.init_name is not None:
            # Init sections keep their name across transcoder runs; the run keeps keys unique.
            init_key = self._key(v.index, f"{stream_id(seg.name) or f'run{key[0]}'}-{seg.init_name}")
            init_task = v.inits.get(init_key)
            if init_task is None:
                init_task = asyncio.ensure_future(
                    self._uploader.upload_file(folder / seg.init_name, init_key, str(v.index),
                                               root=self._hls_dir)
                )
                v.inits[init_key] = init_task
        seg_key = self._key(v.index, seg.name)
        if seg_key in self._restored_uploads:  # uploaded before a restart, not yet listed then
            self._restored_uploads.discard(seg_key)
            task: asyncio.Task[float] = asyncio.ensure_future(_already(0.0))
        else:
            task = asyncio.ensure_future(self._upload(folder / seg.name, seg_key, v.index, init_task))
        task.add_done_callback(self._on_done)
        if v.index not in slot.copies:
            self._queued += 1
        slot.copies[v.index] = _Copy(seg, self._key(v.index, seg.name), init_key, now, task)
        self._update_queue_gauge()

    def _run_name(self, run: int) -> str:
        return next((name for name, order in self._runs.items() if order == run), f"run-{run}")

    def _insert(self, slot: _Slot) -> _Slot:
        existing = self._slots.get(slot.key)
        if existing is not None:  # e.g. every variant announces the same end of stream
            return existing
        self._slots[slot.key] = slot
        bisect.insort(self._order, slot.key)
        return slot

    async def _upload(self, path: Path, key: str, index: int, init: asyncio.Task[float] | None) -> float:
        if init is not None:
            try:
                await asyncio.shield(init)  # shared by every segment of the run
            except SegmentLost as err:
                raise SegmentLost("init_lost", f"its init section could not be uploaded: {err}") from err
        return await self._uploader.upload_file(path, key, str(index), root=self._hls_dir)

    def _key(self, index: int, name: str) -> str:
        return f"{self._prefix}/{index}/{name}" if self._prefix else f"{index}/{name}"

    # -- listing, in order, the same slots in every variant ------------------------------------------

    def _on_done(self, _task: asyncio.Future[float]) -> None:
        if not self._closed:
            self._advance()

    def _participants(self, key: SlotKey) -> list[_Variant]:
        """Variants that take part in a slot: those that had joined its run by then, and every variant
        that has listed before and is still producing, even if it has not read the new run's playlist
        yet. A variant that has listed must be in every slot, or its numbering would fall behind the
        others' for good; an empty one may join at any number."""
        now = self._mono()
        gone_after = 3 * (self._target or 3)
        members = []
        for v in self._variants.values():
            first = v.first.get(key[0])
            if first is not None:
                if first <= key[1]:
                    members.append(v)
                elif v.generator is not None and v.generator.segment_count:
                    members.append(v)  # joined this run after the slot: absent, so the slot is dropped
            elif (v.generator is not None and v.generator.segment_count and v.last_new_segment is not None
                  and now - v.last_new_segment < gone_after and (v.last_key or (-1, -1))[0] < key[0]):
                members.append(v)  # has not seen this run yet: wait for it (or for it to go quiet)
        return members

    def _advance(self) -> None:
        while self._order:
            key = self._order[0]
            slot = self._slots[key]
            members = self._participants(key) if key[1] != _END else [
                v for v in self._variants.values() if key[0] in v.first]
            if key[1] == _END:
                if not all(v.source_ended or (v.last_key or key)[0] > key[0] for v in members):
                    break
                self._pop(key)
                if self._recorder is not None and self._target is not None:
                    self._recorder.finish(self._run_name(key[0]), self._target, self._master_variants)
                for v in members:
                    if v.generator is not None and not v.generator.ended:
                        v.generator.end()
                        log.info("variant %d: Owncast ended the stream; playlist closed with ENDLIST", v.index)
                continue
            if not all(self._resolved(v, slot) for v in members):
                break
            previous = self._decided
            self._pop(key)
            if previous[0] == key[0] and key[1] != previous[1] + 1:
                # Owncast's numbering jumped: segments we never saw (e.g. written while we were down
                # and already cleaned up). The next one marks the gap.
                log.warning("segments %d..%d of run %d were never seen; marking the gap", previous[1] + 1,
                            key[1] - 1, key[0])
                for v in members:
                    if v.generator is not None:
                        v.generator.mark_gap()
            self._decide(slot, members)
        self._update_queue_gauge()
        self._publish()

    def _resolved(self, v: _Variant, slot: _Slot) -> bool:
        copy = slot.copies.get(v.index)
        if copy is None:  # Owncast moved on without ever listing it in this variant
            return v.last_key is not None and v.last_key > slot.key
        return copy.task.done()

    def _pop(self, key: SlotKey) -> None:
        self._order.pop(0)
        self._queued -= len(self._slots.pop(key).copies)
        self._decided = key

    def _decide(self, slot: _Slot, members: list[_Variant]) -> None:
        failed: set[int] = set()  # variants whose own copy cannot be listed
        for v in members:
            copy = slot.copies.get(v.index)
            if copy is None:
                failed.add(v.index)
                self._metrics.segments_lost.labels(variant=str(v.index), reason="missing").inc()
                log.warning("variant %d: Owncast never listed segment %d:%d", v.index, *slot.key)
            elif copy.task.cancelled():
                return
            elif (err := copy.task.exception()) is not None:
                failed.add(v.index)
                self._lost(v, copy, err)
            elif self._target is not None and not hls.fits_target(round(copy.source.duration, 3), self._target):
                # Checked for every variant before any lists it: one generator refusing what the
                # others list would leave it a number behind for good.
                failed.add(v.index)
                self._metrics.input_rejected.labels(reason="rejected").inc()
                self._metrics.segments_lost.labels(variant=str(v.index), reason="rejected").inc()
                log.warning("variant %d: segment %s not listed: EXTINF %.3fs does not fit target duration %ds",
                            v.index, copy.source.name, copy.source.duration, self._target)
        if failed:
            # Listing it in some variants only would number them differently: drop it everywhere.
            for v in members:
                if v.generator is not None:
                    v.generator.mark_gap()
                if v.index not in failed:
                    self._metrics.segments_lost.labels(variant=str(v.index), reason="sibling_lost").inc()
            return
        sequence = self._next_sequence
        discontinuity = slot.discontinuity or (self._last_run is not None and slot.key[0] != self._last_run)
        wall = self._wall()  # one clock reading per slot: a date made up here is the same in every variant
        listed_any = False
        for v in members:
            listed_any |= self._list(v, slot.copies[v.index], sequence, discontinuity, slot.key[0], wall)
        if listed_any:
            self._next_sequence += 1
            self._last_run = slot.key[0]

    def _lost(self, v: _Variant, copy: _Copy, err: BaseException) -> None:
        reason = err.reason if isinstance(err, SegmentLost) else "error"
        self._metrics.segments_lost.labels(variant=str(v.index), reason=reason).inc()
        if isinstance(err, SegmentLost):
            log.warning("variant %d: segment %s lost (%s): %s", v.index, copy.source.name, reason, err)
        else:
            log.error("variant %d: segment %s lost to an unexpected error: %r", v.index, copy.source.name, err)

    def _list(self, v: _Variant, copy: _Copy, sequence: int, discontinuity: bool, run: int, wall: float) -> bool:
        gen = v.generator
        assert gen is not None
        src = copy.source
        segment = ListedSegment(
            uri=self._urls.segment(copy.key),
            duration=src.duration,
            program_date_time=src.program_date_time,
            discontinuity=discontinuity,
            init_uri=self._urls.init(copy.init_key) if copy.init_key else None,
            key=copy.key,
        )
        try:
            gen.append(segment, self._mono(), sequence, wall=wall)
        except SegmentRejected as err:
            self._metrics.input_rejected.labels(reason="rejected").inc()
            self._metrics.segments_lost.labels(variant=str(v.index), reason="rejected").inc()
            log.warning("variant %d: segment %s not listed: %s", v.index, src.name, err)
            gen.mark_gap()
            return False
        now = self._mono()
        v.last_listed = now
        label = str(v.index)
        self._metrics.segments_listed.labels(variant=label).inc()
        self._metrics.window_segments.labels(variant=label).set(gen.segment_count)
        self._metrics.last_segment.labels(variant=label).set(self._wall())
        # Moving average over ~10 segments of the successful PutObject's time against the media it
        # carries (like Owncast's "possible slow uploads"): above 1 the bucket cannot keep up. An
        # outage does not count here: it shows as storage unreachable instead.
        ratio = copy.task.result() / max(src.duration, 0.001)
        self._upload_ratio += (ratio - self._upload_ratio) * 0.2
        self._metrics.upload_realtime_ratio.set(round(self._upload_ratio, 3))
        self._unpublished.append((v.index, sequence, src, copy.seen_at, segment.uri))
        if self._recorder is not None:
            self._recorder.record(self._run_name(run), v.index, segment)
        removed = gen.drain_removed()
        if removed and self._on_removed is not None:
            self._on_removed(removed)
        return True

    # -- publishing: durable first, then visible ----------------------------------------------------

    def _publish(self) -> None:
        changed = any(
            v.generator is not None and v.generator.segment_count
            and self._visible.get(v.index) is not v.generator.render()
            for v in self._variants.values()
        )
        if not changed:
            return
        if self._state is None or self._saver is None:
            self._apply(self._renderings(), self._take_events(), self._edge_renderings())
        else:
            self._dirty.set()

    def _renderings(self, *, edge: bool = False) -> dict[int, Rendered]:
        return {v.index: v.generator.render_edge() if edge else v.generator.render()
                for v in self._variants.values() if v.generator is not None and v.generator.segment_count}

    def _edge_renderings(self) -> dict[int, Rendered]:
        """The same versions for the bucket (no blocking reload), taken at the same moment."""
        return self._renderings(edge=True) if self._mirror is not None else {}

    def _take_events(self) -> list[_Event]:
        events, self._unpublished = self._unpublished, []
        return events

    def _apply(self, renderings: dict[int, Rendered], events: list[_Event],
               edges: dict[int, Rendered]) -> None:
        self._visible.update(renderings)
        self._offer_to_mirror(edges)
        # Wake requests held for a newer version (blocking reload), then arm the next wake-up.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        now = self._mono()
        for index, sequence, src, seen_at, uri in events:
            self._metrics.listing_delay.observe(now - seen_at)
            if self._on_listed is not None:
                self._on_listed(index, sequence, src, uri)

    async def _save_loop(self) -> None:
        assert self._state is not None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            renderings, edges = self._renderings(), self._edge_renderings()
            if not self._unpublished and all(self._visible.get(i) is r for i, r in renderings.items()):
                continue  # woken again for a change an earlier save already covered
            events, data = self._take_events(), self.snapshot()
            try:
                # Shielded: cancelling the loop cannot stop the thread, and close() waits for it.
                self._saving = asyncio.ensure_future(asyncio.to_thread(self._state.save, data))
                await asyncio.shield(self._saving)
                self._state_error = None
            except OSError as err:
                # Keep the stream going (availability first), but say loudly that a restart now
                # would not continue the numbering.
                if self._state_error != err.strerror:
                    log.error("cannot save state to %s: %s", self._state.path, err.strerror)
                self._state_error = str(err.strerror)
            self._apply(renderings, events, edges)

    def _offer_to_mirror(self, edges: dict[int, Rendered]) -> None:
        """Visible (and saved) versions go to the bucket too; the master once its variants are there."""
        mirror, target = self._mirror, self._target
        if mirror is None or target is None:
            return
        cache_control = hls.playlist_cache_control(target)
        for index, rendered in edges.items():
            mirror.offer(self._key(index, hls.MEDIA_PLAYLIST_NAME), rendered, cache_control)
        master = self.master_playlist()
        if master is not None and self._master_variants:
            needs = tuple(self._key(v.index, hls.MEDIA_PLAYLIST_NAME) for v in self._master_variants)
            mirror.offer(self.master_key, master, cache_control, requires=needs)

    @property
    def master_key(self) -> str:
        return f"{self._prefix}/{hls.MASTER_PLAYLIST_NAME}" if self._prefix else hls.MASTER_PLAYLIST_NAME

    def offer_to_mirror(self) -> None:
        """Offer what clients see now (at start-up after a restore, and at shutdown)."""
        self._offer_to_mirror(self._edge_renderings() if self._visible else {})

    def save_now(self) -> None:
        """Write the state synchronously (at shutdown)."""
        if self._state is not None:
            try:
                self._state.save(self.snapshot())
            except OSError as err:
                log.error("cannot save state to %s at shutdown: %s", self._state.path, err.strerror)

    def _update_queue_gauge(self) -> None:
        self._metrics.upload_queue.set(self.queue_depth)

    @property
    def queue_depth(self) -> int:
        return self._queued

    # -- persistence -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """The publisher's memory, JSON-able: numbering, windows, what is seen and uploaded."""
        now = self._mono()
        pending: dict[int, set[str]] = {}
        uploaded: list[str] = []
        for slot in self._slots.values():
            for index, copy in slot.copies.items():
                pending.setdefault(index, set()).add(copy.source.name)
                t = copy.task
                if t.done() and not t.cancelled() and t.exception() is None:
                    uploaded.append(copy.key)
        variants = {}
        for v in self._variants.values():
            undecided = pending.get(v.index, set())
            variants[str(v.index)] = {
                "generator": v.generator.snapshot(now) if v.generator is not None else None,
                # Names still in flight are forgotten, so a restart uploads and lists them.
                "seen": [n for n in list(v.seen)[-_SEEN_SAVED:] if n not in undecided],
                "first": {str(k): n for k, n in v.first.items()},
                "last_key": list(v.last_key) if v.last_key else None,
                "last_media_sequence": v.last_media_sequence,
                "restarts": v.restarts,
                "source_ended": v.source_ended,
            }
        return {
            "target_duration": self._target,
            "independent": self._independent,
            "next_sequence": self._next_sequence,
            "last_run": self._last_run,
            "decided": list(self._decided),
            "runs": self._runs,
            "variants": variants,
            "uploaded": uploaded + sorted(self._restored_uploads),
            **(self._extra_state() if self._extra_state is not None else {}),
        }

    def restore(self, data: dict[str, object]) -> None:
        """Continue from `snapshot`; raises ValueError (nothing changed) when it does not add up.

        state.json may be damaged or crafted: every value is checked (types, ranges, sizes) before
        anything changes, and any other error in here is turned into the same ValueError, so the
        service sets the file aside instead of failing to start."""
        try:
            restored = self._parse_state(data)
        except ValueError:
            raise
        except Exception as err:  # noqa: BLE001 (a check missed above: still a bad file, not a crash)
            raise ValueError(f"publisher state does not parse: {state_io.describe(err)}") from None
        (self._variants, self._target, self._independent, self._next_sequence, self._last_run, self._decided,
         self._runs, self._restored_uploads) = restored
        self._visible = self._renderings()
        log.info("continuing from saved state: next media sequence %d, %d variant(s)",
                 self._next_sequence, len(self._variants))

    def _parse_state(self, data: dict[str, object]) -> tuple[
            dict[int, _Variant], int | None, bool, int, int | None, SlotKey, dict[str, int], set[str]]:
        s, what = state_io, "publisher state"
        now = self._mono()
        data = s.mapping(data, what, 1000)
        raw_target = s.field(data, "target_duration", what)
        target = None if raw_target is None else s.integer(raw_target, "target_duration", 1,
                                                           MAX_RESTORED_TARGET)
        variants: dict[int, _Variant] = {}
        for name, raw in s.mapping(s.field(data, "variants", what), "variants", _MAX_VARIANTS).items():
            index = _number_key(name, "a variant", 4)
            raw = s.mapping(raw, f"variant {name}", 100)
            gen_data = s.field(raw, "generator", what)
            gen = None
            if gen_data is not None:
                gen = ManifestGenerator.restore(s.mapping(gen_data, "generator", 100), now, self._window,
                                                can_block_reload=self._can_block)
                if gen.target_duration != target:
                    raise ValueError(f"variant {name}: target duration {gen.target_duration}, not {target}")
            v = _Variant(index, generator=gen, created=now)
            for seen in s.array(s.field(raw, "seen", what), "seen", _SEEN_LIMIT):
                # Rejected names are remembered too, escapes and all: never written anywhere.
                v.seen[s.text(seen, "a seen name", 1 << 16, one_line=False)] = None
            first = s.mapping(s.field(raw, "first", what), "first", _MAX_RUNS)
            v.first = {_number_key(k, "a run", 18): s.integer(n, "a first number") for k, n in first.items()}
            last_key = s.field(raw, "last_key", what)
            if last_key is not None:
                pair = s.array(last_key, "last_key", 2)
                if len(pair) != 2:
                    raise ValueError(f"last_key is {s.describe(pair)}, not [run, number]")
                v.last_key = (s.integer(pair[0], "last_key"), s.integer(pair[1], "last_key"))
            v.last_media_sequence = s.integer(s.field(raw, "last_media_sequence", what), "last_media_sequence",
                                              -1)
            v.restarts = s.integer(s.field(raw, "restarts", what), "restarts")
            v.source_ended = s.flag(s.field(raw, "source_ended", what), "source_ended")
            variants[v.index] = v
        if target is None and any(v.generator is not None for v in variants.values()):
            raise ValueError("playlists without a target duration")
        independent = s.flag(s.field(data, "independent", what), "independent")
        next_sequence = s.integer(s.field(data, "next_sequence", what), "next_sequence")
        if any(v.generator and v.generator.next_sequence > next_sequence for v in variants.values()):
            raise ValueError("a playlist is ahead of the shared numbering")
        raw_last_run = s.field(data, "last_run", what)
        last_run = None if raw_last_run is None else s.integer(raw_last_run, "last_run")
        decided = s.array(s.field(data, "decided", what), "decided", 2)
        if len(decided) != 2:
            raise ValueError(f"decided is {s.describe(decided)}, not [run, number]")
        # (-1, -1) before anything was decided; an end of stream is decided as (run, _END).
        key = (s.integer(decided[0], "decided", -1), s.integer(decided[1], "decided", -1))
        runs = {s.text(name, "a run name", 1 << 16, one_line=False): s.integer(n, "a run number")
                for name, n in s.mapping(s.field(data, "runs", what), "runs", _MAX_RUNS).items()}
        # Runs are numbered in the order they were seen, so the next one sorts after every slot
        # decided so far; a number outside them would keep a new stream's segments "late" for good.
        if sorted(runs.values()) != list(range(len(runs))):
            raise ValueError("run numbers are not 0, 1, 2...")
        used = [key[0], -1 if last_run is None else last_run]
        for v in variants.values():
            used += [*v.first, -1 if v.last_key is None else v.last_key[0]]
        if max(used) >= len(runs):
            raise ValueError(f"run {max(used)} is not among the {len(runs)} runs saved")
        uploaded = {s.text(k, "an uploaded key")
                    for k in s.array(s.field(data, "uploaded", what), "uploaded", _MAX_UPLOADED)}
        return variants, target, independent, next_sequence, last_run, key, runs, uploaded

    # -- output: PlaylistSource for the server ------------------------------------------------------

    @property
    def target_duration(self) -> int | None:
        return self._target

    def variants(self) -> list[int]:
        return sorted(self._variants)

    def generator(self, index: int) -> ManifestGenerator | None:
        v = self._variants.get(index)
        return v.generator if v else None

    def media_playlist(self, variant: int) -> Rendered | None:
        return self._visible.get(variant)

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        """The playlist once it lists `sequence` (or ended), or None after `timeout` (LL-HLS 6.2.5.2).

        Waiters share one event per published version: no task, no polling, a few hundred bytes each.
        Once the service stops (release_waiters), every waiter gets the playlist as it is, at once.
        """
        self.held_requests += 1
        try:
            async with asyncio.timeout(timeout):
                while True:
                    rendered = self._visible.get(variant)
                    if rendered is not None and (rendered.last_sequence >= sequence or rendered.ended):
                        return rendered
                    if self._released:
                        return rendered
                    await self._changed.wait()
        except TimeoutError:
            return None
        finally:
            self.held_requests -= 1

    def release_waiters(self) -> None:
        """Stopping: answer every held request now, and hold no new one."""
        self._released = True
        self._changed.set()

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        """Rendered once per change of Owncast's variants and per variant file name (the server asks
        for two: hls.MEDIA_PLAYLIST_NAME and hls.OWNCAST_PLAYLIST_NAME)."""
        master = self._masters.get(media_name)
        if master is None:
            variants = self._master_variants
            if not variants or any(self.media_playlist(v.index) is None for v in variants):
                return None  # a player must find every variant it is offered
            master = self._masters[media_name] = render_master(variants, media_name)
        return master

    # -- health ------------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, object]]:
        now = self._mono()
        reasons: list[str] = []
        up = self._uploader
        if up.storage_ok is False:
            reasons.append(f"storage unreachable ({up.last_error})")
        live = any(v.generator and not v.source_ended and v.last_new_segment for v in self._variants.values())
        stall = 3 * (self._target or 3)
        variants: dict[str, object] = {}
        last_ages: list[float] = []
        for v in self._variants.values():
            gen = v.generator
            age = None if v.last_listed is None else round(now - v.last_listed, 3)
            if age is not None:
                last_ages.append(age)
            variants[str(v.index)] = {
                "segments": gen.segment_count if gen else 0,
                "media_sequence": gen.media_sequence if gen else 0,
                "ended": bool(gen and gen.ended),
                "seconds_since_last_segment": age,
            }
            if live and not v.source_ended and v.last_new_segment and now - v.last_new_segment > stall:
                reasons.append(f"variant {v.index}: no new segment from Owncast for {now - v.last_new_segment:.0f}s")
            elif live and v.last_new_segment and v.last_new_segment > (v.last_listed or 0):
                since = v.last_listed or v.created
                if now - since > stall:  # Owncast produces, we list nothing (rejected, lost, stuck)
                    reasons.append(f"variant {v.index}: nothing listed for {now - since:.0f}s")
        if self._upload_ratio > _SLOW_RATIO and live:
            reasons.append(f"uploads slower than real time ({self._upload_ratio:.1f}s per second of media)")
        if self._state_error is not None:
            reasons.append(f"cannot save state ({self._state_error})")
        oldest = min((c.seen_at for s in self._slots.values() for c in s.copies.values()), default=None)
        if oldest is not None and now - oldest > stall:
            reasons.append(f"uploads behind by {now - oldest:.0f}s")
        state = StreamState.of("idle" if not self._variants else ("live" if live else "ended"), not reasons)
        body: dict[str, object] = {
            "status": "ok" if not reasons else "; ".join(reasons),
            "stream": state.stream,
            "target_duration": self._target,
            "variants": variants,
            "seconds_since_last_segment": min(last_ages) if last_ages else None,
            "uploads": {"done": up.uploads_done, "failed": up.uploads_failed},
            "upload_queue_depth": self.queue_depth,
            "storage_reachable": up.storage_ok,
            "upload_realtime_ratio": round(self._upload_ratio, 3),
        }
        return not reasons, body

    # -- life cycle --------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` for uploads in flight; True when nothing is left."""
        tasks = [c.task for s in self._slots.values() for c in s.copies.values() if not c.task.done()]
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def start(self) -> None:
        if self._state is not None and self._saver is None:
            self._saver = asyncio.create_task(self._save_loop(), name="state-saver")

    async def close(self) -> None:
        self._closed = True
        if self._saver is not None:
            self._saver.cancel()
            try:
                await self._saver
            except asyncio.CancelledError:
                pass
            self._saver = None
        if self._saving is not None:
            # A save still writing in its thread must finish before save_now() writes a newer one.
            await asyncio.wait([self._saving])
            if not self._saving.cancelled():
                self._saving.exception()  # retrieved: its OSError was logged by the loop or is moot now
        tasks = [c.task for s in self._slots.values() for c in s.copies.values()]
        tasks += [t for v in self._variants.values() for t in v.inits.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
