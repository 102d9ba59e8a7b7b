"""Turns Owncast's playlists into ours: builds every part and reads Owncast's files, deciding what a new
stream, a gap or the end looks like in them (what it means for a playlist is its VariantPlaylist's).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..bucket.recorder import Recorder
from ..bucket.uploader import Uploaded, Uploader
from ..lograte import RateLimitedLog
from ..metrics import Metrics
from ..playlist import hls
from ..playlist.segments import Removed
from ..source.owncast import SourcePlaylist, SourceVariant
from .behind import Mark
from .config import PublisherConfig
from .late import LateCopies
from .lister import Lister
from .memory import Recall
from .parts import Numbering, Parts
from .release import Outlets, Release
from .slots import END, Copy, Lanes, SlotAligner, Variant
from .target import TargetPolicy
from .uploads import Uploads, WriteWatch, WritesWaited
from .variant_playlist import RemovedHook, VariantPlaylist
from .variants import Variants

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublisherFacts:
    """What the publisher knows at one moment (monotonic seconds)."""

    now: float
    variants: list[Variant]
    target_duration: int | None
    upload_ratio: float  # moving average of (PutObject time / segment duration)
    oldest_upload: float | None  # when the oldest copy still uploading was seen
    queue_depth: int


class Publisher:
    def __init__(self, config: PublisherConfig, *, uploader: Uploader, writes: WriteWatch, metrics: Metrics,
                 outlets: Outlets, recorder: Recorder | None = None,
                 others: Mapping[str, Uploader] | None = None) -> None:
        """`uploader` is the first bucket's, `others` every other bucket's by pathway ID."""
        self._metrics = metrics
        self._mono = config.monotonic
        self.target = TargetPolicy(config.target_duration, metrics)
        self.on_removed: RemovedHook | None = None  # segments that left every playlist, for the cleaner
        self._plan = config.pathways
        self._variants = Variants(config.window, self._drop, config.pathways)
        # Nothing new is shown before a state is saved above the first sequence.
        self.release = Release(outlets, metrics, key_prefix=config.key_prefix, limit=config.first_sequence,
                               shown_to=self._variants, monotonic=config.monotonic)
        self._lanes = Lanes(metrics)
        waited = self._waited = WritesWaited(writes, config.hls_dir)
        self._uploads = Uploads(config, uploader, waited, metrics, others=others)
        writes.follow(self._uploads.rewrites.heard)
        self._late = LateCopies(metrics, recorder, self._to_cleaner, config.monotonic)
        self._numbering = Numbering(config.first_sequence)
        if recorder is not None:  # a segment lost after it was listed is a gap in its recording too
            numbering = self._numbering
            self._uploads.on_lost_listed = lambda index, key, run: recorder.lost(
                numbering.run_name(run), index, key.rpartition("/")[2])
        parts = Parts(config, metrics, recorder, self._variants, self._lanes, self._numbering, self.target,
                      self.release, self._uploads, waited, self._late)
        self.lister = Lister(parts, memory=lambda now: self._recall.memory(now))
        self._variants.caught_up = self.lister.again
        self._recall = Recall(parts, self.lister.behind, self._drop)
        self._input_log = RateLimitedLog(log)
        self.release.changed(self.lister.versions())  # the target TARGET_DURATION sets, before any playlist

    @property
    def target_duration(self) -> int | None:
        return self.target.value

    @property
    def aligner(self) -> SlotAligner:
        return self._lanes.together

    def on_master(self, variants: list[SourceVariant]) -> None:
        self.release.announce(variants)
        named = {sv.index for sv in variants}
        for v in self._variants.values():
            if v.index in named:
                v.withdrawn = False
            elif not v.withdrawn:
                # A new stream without this variant: its playlist ends after what waits in it.
                v.withdrawn = True
                self.lister.behind.step(v, Mark.END)
                log.info("variant %d: no longer in Owncast's multivariant playlist; its playlist is closed",
                         v.index)
        if not self.lister.behind.closed:
            self.lister.advance()

    def on_variant_playlist(self, index: int, playlist: SourcePlaylist) -> None:
        if self.lister.behind.closed:
            return
        v = self._variants.get(index)
        if v is None:
            v = self._variants.add(index, self._mono())
            log.info("variant %d appeared", index)
        for name, why in playlist.rejected:
            if name not in v.seen:
                v.seen[name] = None
                self._metrics.input_rejected.labels(reason="unsafe_name").inc()
                shown = name if len(name) <= 200 else name[:200] + "..."
                self._input_log.warning(f"unsafe_name:{index}", "skipping %r in %s/stream.m3u8: %s",
                                        shown, index, why)
        if any(not s.is_offline_clip for s in playlist.segments):
            # Only real stream segments tell what a new stream needs (not Owncast's offline clips).
            v.advertised = hls.target_duration_for(playlist.target_duration)
            self.target.first(v.advertised, playlist.independent_segments, playlist.target_duration)
        target = self.target.value
        if target is not None and not v.playlist.opened:
            floor = self._numbering.discontinuity_floor
            v.playlist.open(target, self.target.independent, self._mono(),
                            (self._numbering.next_sequence, floor) if floor else None)
        if playlist.media_sequence < v.last_media_sequence:
            v.restarts += 1  # Owncast restarted its transcoder: a new run
        v.last_media_sequence = playlist.media_sequence
        now = self._mono()
        self._recall.first_read(v, playlist, now)
        for seg in playlist.segments:
            if seg.name in v.seen:
                continue
            v.seen[seg.name] = None
            if seg.is_offline_clip:
                log.info("variant %d: Owncast shows its offline clip %s; not published", index, seg.name)
            elif v.playlist.opened:
                self.lister.add(v, seg, playlist.media_sequence + seg.position, now)
        # Owncast's offline tail ends with ENDLIST; its idle transcoder only lists offline clips.
        ended = playlist.ended or (bool(playlist.segments) and playlist.segments[-1].is_offline_clip)
        if ended and not v.source_ended and v.last_key is not None:
            self._lanes.lane(v.index, v.last_key[0], self._variants).slot((v.last_key[0], END))
        v.source_ended = ended
        self.lister.advance()

    def _drop(self, removed: list[Removed]) -> None:
        """Segments that left every playlist (or objects no playlist will name) go on to the cleaner."""
        self._late.left(removed)  # a gap's segment still uploading late goes to the cleaner once it lands
        self._to_cleaner(removed)

    def _to_cleaner(self, removed: list[Removed]) -> None:
        if removed and self.on_removed is not None:
            self.on_removed(removed)

    @property
    def queue_depth(self) -> int:
        """Copies not listed yet: in undecided slots, and waiting in a variant behind a stuck one."""
        return self._lanes.queued + self.lister.behind.count

    def snapshot(self) -> dict[str, object]:
        """The publisher's memory now, as the lister pushes it with each version."""
        return self._recall.memory(self._mono())

    def restore(self, data: dict[str, object]) -> None:
        """Continue from `snapshot`; ValueError (nothing changed) when it does not add up."""
        allowed = self._recall.restore(data)  # below it, numbers may be shown before a save
        self.release.restored(self.lister.versions(), allowed)

    def variants(self) -> list[int]:
        return sorted(self._variants)

    def playlist(self, index: int) -> VariantPlaylist | None:
        v = self._variants.get(index)
        return v.playlist if v else None

    def steered(self) -> None:
        """The steering changed: what the VM holds is listed now if a pathway lists it."""
        if self._plan.lists_held():
            self._uploads.release_held((i, c) for i, c in self._unlisted() if not c.ready.done())
        self.lister.advance()

    def found(self, pathway: str, key: str) -> tuple[int, str | None] | None:
        """A key `pathway` lists now: its number and the first bucket's URL once landed there."""
        folder = key.rpartition("/")[0].rpartition("/")[2]
        v = self._variants.get(int(folder)) if folder.isdigit() and len(folder) < 6 else None
        return v.playlist.found(pathway, key) if v is not None else None

    async def landed(self, keys: list[str], timeout: float) -> set[str]:
        """Of these keys (gaps), those whose segment landed late, waiting up to `timeout` for the rest."""
        return await self._late.settled(keys, timeout)

    def _unlisted(self) -> list[tuple[int, Copy]]:
        return [*((i, c) for s in self._lanes.undecided() for i, c in s.copies.items()),
                *((i, w.copy) for i, w in self.lister.behind.waiting())]

    def _in_flight(self) -> list[asyncio.Future[Any]]:
        """The uploads of every copy not listed yet, and of those listed ahead on the VM's pathway."""
        return [*(t for _i, c in self._unlisted() for t in c.landings().values()),
                *(t for v in self._variants.values() for t in v.playlist.landings.uploads())]

    def facts(self) -> PublisherFacts:
        oldest = min((c.seen_at for _i, c in self._unlisted()), default=None)
        return PublisherFacts(self._mono(), list(self._variants.values()), self.target.value,
                              self.lister.upload_ratio, oldest, self.queue_depth)

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` for uploads in flight; True when nothing is left."""
        tasks = [t for t in self._in_flight() if not t.done()]
        # Late ones uploading now (not those still waiting for Owncast).
        tasks += [t for index, key, t in self._late.uploads()
                  if not self._waited.waiting(index, key.rpartition("/")[2])]
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def start(self) -> None:
        await self.release.start()
        for v in self._variants.values():  # what a restored state listed before it landed: uploaded again
            for pathway, keys in v.playlist.landings.keys().items():
                for key in keys:
                    task = self._uploads.again(pathway, v.index, key)
                    if task is None:
                        continue
                    v.playlist.landings.landing(pathway, key, task)
                    task.add_done_callback(functools.partial(self._landed_again, v.index, key))
        self._late.resume(self._uploads.late)

    def _landed_again(self, index: int, key: str, task: asyncio.Future[Uploaded]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._metrics.segments_lost.labels(variant=str(index), reason="not_uploaded").inc()
            log.warning("variant %d: %s was listed before a restart but cannot be uploaded (%s); its "
                        "playlists list it as a gap", index, key, task.exception())
        self.lister.on_done(task)

    async def close(self) -> None:
        self.lister.behind.close()
        await self.release.close()
        tasks = [*self._in_flight(), *self._uploads.inits()]
        tasks += [*(t for _i, _k, t in self._late.uploads()), *self._uploads.rewrites.tasks()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
