"""Turns Owncast's playlists into ours: upload first, list second, in Owncast's order per variant.

Uploads run in parallel (across variants and across a backlog); a segment that finishes early waits
for the ones before it. What a new stream, a gap or the end of a stream looks like in Owncast's files
is decided here; what that means for the playlist (discontinuities, ENDLIST, the window) is the
ManifestGenerator's business.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import hls
from .manifest import ListedSegment, ManifestGenerator, Rendered, SegmentRejected, render_master
from .metrics import Metrics
from .owncast import SourcePlaylist, SourceSegment, SourceVariant, stream_id
from .uploader import SegmentLost, Uploader

log = logging.getLogger(__name__)

_SEEN_LIMIT = 4096  # names remembered per variant, far more than Owncast ever lists at once


@dataclass(slots=True)
class _Pending:
    source: SourceSegment | None  # None: Owncast ended the stream here
    seen_at: float = 0.0  # monotonic
    discontinuity: bool = False
    key: str = ""
    init_key: str | None = None
    task: asyncio.Task[int] | None = None


@dataclass(slots=True)
class _Variant:
    index: int
    generator: ManifestGenerator | None = None
    queue: deque[_Pending] = field(default_factory=deque)
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    inits: dict[str, asyncio.Task[int]] = field(default_factory=dict)  # key -> upload
    last_stream: str | None = None
    last_media_sequence: int = -1
    new_timeline: bool = False
    source_ended: bool = False
    last_new_segment: float | None = None  # monotonic, Owncast listed something new
    last_listed: float | None = None  # monotonic, we listed something


ListedHook = Callable[[int, int, SourceSegment], None]


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
    ) -> None:
        self._hls_dir = hls_dir
        self._uploader = uploader
        self._metrics = metrics
        self._prefix = key_prefix.strip("/")
        self._public_url = public_url.rstrip("/")
        self._window = window_seconds
        self._target = target_duration or None
        self._wall = wall_clock
        self._mono = monotonic
        self._on_listed = on_listed
        self._variants: dict[int, _Variant] = {}
        self._master_variants: list[SourceVariant] | None = None
        self._master: Rendered | None = None
        self._independent = True
        self._closed = False

    # -- input from the watcher --------------------------------------------------------------------

    def on_master(self, variants: list[SourceVariant]) -> None:
        if variants != self._master_variants:
            self._master_variants = variants
            self._master = None
            log.info("Owncast announces %d variant(s): %s", len(variants), [v.index for v in variants])

    def on_variant_playlist(self, index: int, playlist: SourcePlaylist) -> None:
        if self._closed:
            return
        v = self._variants.get(index)
        if v is None:
            v = self._variants[index] = _Variant(index)
            log.info("variant %d appeared", index)
        for name, why in playlist.rejected:
            if name not in v.seen:
                self._remember(v, name)
                self._metrics.input_rejected.labels(reason="unsafe_name").inc()
                log.warning("skipping %r in %s/stream.m3u8: %s", name, index, why)
        if self._target is None:
            self._target = hls.target_duration_for(
                [s.duration for s in playlist.segments], playlist.target_duration
            )
            self._independent = playlist.independent_segments
            log.info("target duration fixed at %ds (Owncast advertises %ds)", self._target, playlist.target_duration)
        if v.generator is None:
            v.generator = ManifestGenerator(self._target, self._window, independent_segments=self._independent)
        # Owncast restarted its transcoder (its numbering went back): the next segment starts a new timeline.
        if playlist.media_sequence < v.last_media_sequence:
            v.new_timeline = True
        v.last_media_sequence = playlist.media_sequence

        now = self._mono()
        for seg in playlist.segments:
            if seg.name in v.seen:
                continue
            self._remember(v, seg.name)
            if seg.is_offline_clip:
                # Longer than any target duration and not part of the stream: the ENDLIST says it all.
                log.info("variant %d: Owncast shows its offline clip %s; not published", index, seg.name)
                v.new_timeline = True
                continue
            self._enqueue(v, seg, now)
        if playlist.ended and not v.source_ended:
            v.source_ended = True
            v.queue.append(_Pending(None))
            self._drain(v)
        elif not playlist.ended:
            v.source_ended = False

    def _remember(self, v: _Variant, name: str) -> None:
        v.seen[name] = None
        if len(v.seen) > _SEEN_LIMIT:
            v.seen.popitem(last=False)

    def _enqueue(self, v: _Variant, seg: SourceSegment, now: float) -> None:
        sid = stream_id(seg.name)
        discontinuity = seg.discontinuity or v.new_timeline or (
            sid is not None and v.last_stream is not None and sid != v.last_stream
        )
        v.new_timeline = False
        v.last_stream = sid or v.last_stream
        v.last_new_segment = now
        self._metrics.segments_seen.labels(variant=str(v.index)).inc()
        folder = self._hls_dir / str(v.index)
        pending = _Pending(seg, seen_at=now, discontinuity=discontinuity, key=self._key(v.index, seg.name))
        init_task: asyncio.Task[int] | None = None
        if seg.init_name is not None:
            # Init sections keep their name across transcoder runs; the stream id keeps keys unique.
            pending.init_key = self._key(v.index, f"{sid or 'init'}-{seg.init_name}")
            init_task = v.inits.get(pending.init_key)
            if init_task is None:
                init_task = asyncio.ensure_future(
                    self._uploader.upload_file(folder / seg.init_name, pending.init_key, str(v.index))
                )
                v.inits[pending.init_key] = init_task
        pending.task = asyncio.ensure_future(self._upload(folder / seg.name, pending.key, v.index, init_task))
        pending.task.add_done_callback(functools.partial(self._on_done, v))
        v.queue.append(pending)
        self._update_queue_gauge()

    async def _upload(self, path: Path, key: str, index: int, init: asyncio.Task[int] | None) -> int:
        if init is not None:
            try:
                await asyncio.shield(init)  # shared by every segment of the stream
            except SegmentLost as err:
                raise SegmentLost("init_lost", f"its init section could not be uploaded: {err}") from err
        return await self._uploader.upload_file(path, key, str(index))

    def _key(self, index: int, name: str) -> str:
        return f"{self._prefix}/{index}/{name}" if self._prefix else f"{index}/{name}"

    # -- listing, in order -------------------------------------------------------------------------

    def _on_done(self, v: _Variant, _task: asyncio.Future[int]) -> None:
        self._drain(v)

    def _drain(self, v: _Variant) -> None:
        gen = v.generator
        assert gen is not None
        while v.queue:
            head = v.queue[0]
            if head.source is None:
                v.queue.popleft()
                gen.end()
                log.info("variant %d: Owncast ended the stream; playlist closed with ENDLIST", v.index)
                continue
            assert head.task is not None
            if not head.task.done():
                break
            v.queue.popleft()
            if head.task.cancelled():
                continue
            err = head.task.exception()
            if err is not None:
                self._lost(v, head, err)
                continue
            self._list(v, gen, head)
        self._update_queue_gauge()

    def _lost(self, v: _Variant, p: _Pending, err: BaseException) -> None:
        assert p.source is not None and v.generator is not None
        reason = err.reason if isinstance(err, SegmentLost) else "error"
        self._metrics.segments_lost.labels(variant=str(v.index), reason=reason).inc()
        if isinstance(err, SegmentLost):
            log.warning("variant %d: segment %s lost (%s): %s", v.index, p.source.name, reason, err)
        else:
            log.error("variant %d: segment %s lost to an unexpected error: %r", v.index, p.source.name, err)
        v.generator.mark_gap()

    def _list(self, v: _Variant, gen: ManifestGenerator, p: _Pending) -> None:
        src = p.source
        assert src is not None
        segment = ListedSegment(
            uri=f"{self._public_url}/{p.key}",
            duration=src.duration,
            program_date_time=src.program_date_time,
            discontinuity=p.discontinuity,
            init_uri=f"{self._public_url}/{p.init_key}" if p.init_key else None,
        )
        try:
            sequence = gen.append(segment, self._wall())
        except SegmentRejected as err:
            self._metrics.input_rejected.labels(reason="too_long").inc()
            self._metrics.segments_lost.labels(variant=str(v.index), reason="too_long").inc()
            log.warning("variant %d: segment %s not listed: %s", v.index, src.name, err)
            gen.mark_gap()
            return
        now = self._mono()
        v.last_listed = now
        label = str(v.index)
        self._metrics.segments_listed.labels(variant=label).inc()
        self._metrics.listing_delay.observe(now - p.seen_at)
        self._metrics.window_segments.labels(variant=label).set(gen.segment_count)
        self._metrics.last_segment.labels(variant=label).set(self._wall())
        if self._on_listed is not None:
            self._on_listed(v.index, sequence, src)

    def _update_queue_gauge(self) -> None:
        self._metrics.upload_queue.set(self.queue_depth)

    @property
    def queue_depth(self) -> int:
        return sum(1 for v in self._variants.values() for p in v.queue if p.source is not None)

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
        gen = self.generator(variant)
        if gen is None or gen.segment_count == 0:
            return None
        return gen.render()

    def master_playlist(self) -> Rendered | None:
        if self._master is None:
            variants = self._master_variants
            if not variants or any(self.media_playlist(v.index) is None for v in variants):
                return None  # a player must find every variant it is offered
            self._master = render_master(variants)
        return self._master

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
            oldest = next((p for p in v.queue if p.source is not None), None)
            if oldest is not None and now - oldest.seen_at > stall:
                reasons.append(f"variant {v.index}: uploads behind by {now - oldest.seen_at:.0f}s")
            if live and not v.source_ended and v.last_new_segment and now - v.last_new_segment > stall:
                reasons.append(f"variant {v.index}: no new segment from Owncast for {now - v.last_new_segment:.0f}s")
        state = "idle" if not self._variants else ("live" if live else "ended")
        body: dict[str, object] = {
            "status": "ok" if not reasons else "; ".join(reasons),
            "stream": state,
            "target_duration": self._target,
            "variants": variants,
            "seconds_since_last_segment": min(last_ages) if last_ages else None,
            "uploads": {"done": up.uploads_done, "failed": up.uploads_failed},
            "upload_queue_depth": self.queue_depth,
            "storage_reachable": up.storage_ok,
        }
        return not reasons, body

    # -- life cycle --------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` for uploads in flight; True when nothing is left."""
        tasks = [p.task for v in self._variants.values() for p in v.queue if p.task and not p.task.done()]
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def close(self) -> None:
        self._closed = True
        tasks = [p.task for v in self._variants.values() for p in v.queue if p.task]
        tasks += [t for v in self._variants.values() for t in v.inits.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
