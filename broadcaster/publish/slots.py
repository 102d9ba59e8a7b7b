"""Cross-variant slot alignment. A slot is (Owncast transcoder run, Owncast's sequence number): ffmpeg
numbers all variants of one run in lockstep (6.2.4). Slots are decided (listed or dropped) in order, once
every variant taking part has its copy uploaded, has moved on without one, or still waits for Owncast's
file while another copy is uploaded. Lanes: the SlotAligner every variant shares, or one per variant for a
run whose variants Owncast cuts at different instants (docs/hls-rules.md, "Variants cut apart").
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any

from ..bucket.uploader import Uploaded
from ..metrics import Metrics
from ..playlist import hls
from ..source.owncast import SourceSegment
from ..tails import Log, Tail
from .variant_playlist import VariantPlaylist

log = logging.getLogger(__name__)

SlotKey = tuple[int, int]
END = 1 << 62  # an end-of-stream marker sorts after every segment of its run
NOTHING: SlotKey = (-1, -1)  # decided before anything was
# Slots decided lately whose copy is remembered (decided_copy), to tell variants cut apart from late.
DECIDED_MEMORY = 64

# Names saved across a restart: Owncast lists at most ~25 per variant, so older names cannot come back.
SAVED_NAMES = 200
SEEN_LIMIT = 4096  # names remembered per variant, far more than Owncast ever lists at once


class SeenNames(OrderedDict[str, None]):
    """Names a variant's playlists listed (never listed again), oldest first, at most SEEN_LIMIT; the last
    SAVED_NAMES of them as JSON in a Log, so a save writes only the names added since the last."""

    def __init__(self) -> None:
        super().__init__()
        self._saved = Log()

    def __setitem__(self, name: str, value: None) -> None:
        if name not in self:
            self._saved.add(json.dumps(name))
            self._saved.drop_to(self._saved.end - SAVED_NAMES)
        super().__setitem__(name, value)
        if len(self) > SEEN_LIMIT:
            self.popitem(last=False)

    def saved(self) -> Tail:
        return self._saved.tail(min(len(self), SAVED_NAMES))


def succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


@dataclass(slots=True)
class Copy:

    source: SourceSegment
    key: str
    init_key: str | None
    seen_at: float  # monotonic
    task: asyncio.Task[Uploaded]  # its upload: in the (first) bucket once done
    # Its SHA-256 (None: not asked for) once it may be listed: in the bucket, or held by the VM.
    ready: asyncio.Future[bytes | None]
    others: dict[str, asyncio.Future[Any]] = field(default_factory=dict)  # other buckets' uploads, by pathway

    def landings(self) -> dict[str, asyncio.Future[Any]]:
        return {hls.BUCKET_PATHWAY: self.task, **self.others}


@dataclass(slots=True)
class Slot:
    key: SlotKey
    copies: dict[int, Copy] = field(default_factory=dict)
    discontinuity: bool = False  # Owncast put EXT-X-DISCONTINUITY before it


@dataclass(slots=True)
class Variant:
    """One of Owncast's variants: what the publisher read of it, and its playlist."""

    index: int
    playlist: VariantPlaylist
    seen: SeenNames = field(default_factory=SeenNames)
    first: dict[int, int] = field(default_factory=dict)  # run -> first Owncast number it joined with
    last_key: SlotKey | None = None
    last_media_sequence: int = -1
    restarts: int = 0  # times Owncast's numbering went back (runs without a stream id in names)
    source_ended: bool = False
    last_new_segment: float | None = None  # monotonic, Owncast listed something new
    created: float = 0.0  # monotonic
    advertised: int = 0  # EXT-X-TARGETDURATION of Owncast's last playlist with stream segments
    withdrawn: bool = False  # Owncast's multivariant playlist no longer names it (a new stream without it)


@dataclass(frozen=True, slots=True)
class Ready:
    """The next slot to decide, the variants taking part, and the slot decided before it."""

    slot: Slot
    members: list[Variant]
    previous: SlotKey


class SlotAligner:

    def __init__(self) -> None:
        self._slots: dict[SlotKey, Slot] = {}
        self._order: list[SlotKey] = []  # undecided slots, sorted
        self.decided: SlotKey = NOTHING  # every slot up to here is listed or dropped
        self._recent: OrderedDict[SlotKey, SourceSegment] = OrderedDict()  # decided slot -> one copy
        self.queued = 0  # copies in undecided slots, counted as they come and go (not summed: quadratic)
        self._run_seen: dict[int, float] = {}  # run -> when its first copy was seen (the last few runs)
        self._joined: dict[int, set[int]] = {}  # run -> variants with a copy in a slot of it decided here

    def slots(self) -> ValuesView[Slot]:
        return self._slots.values()

    @property
    def first(self) -> SlotKey | None:
        return self._order[0] if self._order else None

    def slot(self, key: SlotKey) -> Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = Slot(key)
            bisect.insort(self._order, key)
        return slot

    def add_copy(self, slot: Slot, index: int, copy: Copy) -> None:
        run = slot.key[0]
        if run not in self._run_seen:
            self._run_seen[run] = copy.seen_at
            if len(self._run_seen) > 4:
                del self._run_seen[min(self._run_seen)]
        if index not in slot.copies:
            self.queued += 1
        slot.copies[index] = copy

    def take_run(self, run: int) -> list[Slot]:
        """Take every undecided slot of `run` out (Lanes.cut_apart)."""
        keys = [k for k in self._order if k[0] == run]
        self._order = [k for k in self._order if k[0] != run]
        slots = [self._slots.pop(k) for k in keys]
        self.queued -= sum(len(s.copies) for s in slots)
        return slots

    def take_ready(self, variants: Iterable[Variant], now: Callable[[], float], target: int | None,
                   held: Callable[[int, str], bool] | None = None,
                   fresh: Callable[[int, Copy], bool] | None = None, before: SlotKey | None = None) -> Ready | None:
        """The first undecided slot once it can be decided (taken out), else None. `held(variant, name)`:
        Owncast still writes that file (it holds only its own variant once another copy is in the bucket);
        `fresh(variant, copy)`: False when written again since its upload; `before`: only a slot before it."""
        if not self._order or (before is not None and self._order[0] >= before):
            return None
        key = self._order[0]
        slot = self._slots[key]
        if key[1] == END:
            members = [v for v in variants if key[0] in v.first]
            if not all(v.source_ended or (v.last_key or key)[0] > key[0] for v in members):
                return None
        else:
            members = self._participants(key, variants, now(), target)
            unresolved = [v for v in members if not self._resolved(v, slot)]
            if unresolved and (held is None or not any(succeeded(c.ready) for i, c in slot.copies.items()
                                                       if any(v.index == i for v in members)) or not all(
                    (c := slot.copies.get(v.index)) is not None and held(v.index, c.source.name)
                    for v in unresolved)):
                return None
            if fresh is not None and not all([fresh(i, c) for i, c in slot.copies.items() if succeeded(c.ready)]):
                return None  # (a list: every copy written again is told, not only the first)
        previous = self.decided
        self._order.pop(0)
        self.queued -= len(self._slots.pop(key).copies)
        self.decided = key
        if slot.copies:
            self._recent[key] = next(iter(slot.copies.values())).source
            self._joined.setdefault(key[0], set()).update(slot.copies)
            if len(self._joined) > 4:
                del self._joined[min(self._joined)]
            if len(self._recent) > DECIDED_MEMORY:
                self._recent.popitem(last=False)
        return Ready(slot, members, previous)

    def joined(self, index: int, run: int) -> bool:
        """Variant `index` had a copy in a slot of `run` decided here (the last few runs)."""
        return index in self._joined.get(run, ())

    def decided_copy(self, key: SlotKey) -> SourceSegment | None:
        """A copy the slot at `key` was decided with, if it was decided lately."""
        return self._recent.get(key)

    def _participants(self, key: SlotKey, variants: Iterable[Variant], now: float, target: int | None) -> list[Variant]:
        """Variants that take part in a slot: those in its run by then, and every one listing and still
        producing (else its numbering would fall behind for good)."""
        gone_after = hls.stalled_after(target)
        # A new stream after an ended one: each variant is waited for from the run's first copy on.
        run_seen = self._run_seen.get(key[0])
        members = []
        for v in variants:
            first = v.first.get(key[0])
            if first is not None:
                if first <= key[1]:
                    members.append(v)
                elif v.playlist.listing:
                    members.append(v)  # joined this run after the slot: absent, so the slot is dropped
            elif (v.playlist.listing and not v.withdrawn
                  and now - max(-math.inf if run_seen is None else run_seen,
                                -math.inf if v.last_new_segment is None else v.last_new_segment) < gone_after
                  and (v.last_key or (-1, -1))[0] < key[0]):
                members.append(v)  # has not seen this run yet: wait for it (or for it to go quiet)
        return members

    @staticmethod
    def _resolved(v: Variant, slot: Slot) -> bool:
        copy = slot.copies.get(v.index)
        if copy is None:
            # Owncast moved on without it in this variant, or ended this run before it (ffmpeg stopped
            # mid-segment may close one variant with a last short segment another never gets).
            last = v.last_key
            return last is not None and (last > slot.key or v.source_ended and last[0] == slot.key[0])
        return copy.ready.done()


def apart(seg: SourceSegment, others: list[SourceSegment]) -> bool:
    """This copy does not cover the others' moment (lockstep cuts differ by a frame, not half a second)."""
    return any(abs(o.duration - seg.duration) > 0.5 or (
        o.program_date_time is not None and seg.program_date_time is not None
        and abs(o.program_date_time - seg.program_date_time) > 0.5) for o in others)


class Lanes:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.together = SlotAligner()
        self._apart: set[int] = set()  # runs cut apart: each variant is listed from a lane of its own
        self._lanes: dict[int, SlotAligner] = {}

    def lane(self, index: int, run: int, variants: Mapping[int, Variant]) -> SlotAligner:
        if run not in self._apart:
            return self.together
        lane = self._lanes.get(index)
        if lane is None:
            lane = self._lanes[index] = SlotAligner()
            v = variants.get(index)
            # What was decided together stays decided (a copy waiting in its variant included: else a gap
            # that variant alone has); a variant that had no copy in it lists the run from its start.
            joined = v is not None and (v.playlist.last_run == run or self.together.joined(index, run))
            lane.decided = self.together.decided if joined else min(self.together.decided, (run, -1))
        return lane

    def rounds(self, decide: Callable[[SlotAligner, list[Variant]], bool], variants: Mapping[int, Variant]) -> None:
        """`decide` each lane round after round while any lane decides a slot: one may wait for another."""
        if not self._lanes:  # no run cut apart: one lane, one round
            decide(self.together, list(variants.values()))
            return
        progressed = True
        while progressed:
            progressed = decide(self.together, list(variants.values()))
            for index, lane in self._lanes.items():
                v = variants.get(index)
                if v is not None:
                    progressed = decide(lane, [v]) or progressed

    def bound(self, lane: SlotAligner) -> SlotKey | None:
        """`lane` decides only slots before this one (None: any), so a variant lists its slots in order."""
        if lane is not self.together:
            return self.together.first
        return min((first for own in self._lanes.values() if (first := own.first) is not None), default=None)

    def behind(self, key: SlotKey) -> bool:
        """Some lane has a slot before `key` undecided: a new timeline now would split a moment (6.2.4)."""
        return any(first is not None and first < key
                   for first in (self.together.first, *(own.first for own in self._lanes.values())))

    def late_and_apart(self, v: Variant, seg: SourceSegment, key: SlotKey) -> bool:
        """A copy late for its slot, not covering its moment: the variants are cut apart, not it late."""
        if key[0] in self._apart or v.playlist.last_run == key[0]:
            return False
        decided = self.together.decided_copy(key)
        return decided is not None and apart(seg, [decided])

    def cut_apart(self, run: int, variants: Mapping[int, Variant]) -> float:
        """From now on each variant lists `run` from its own lane; returns the longest copy moved there."""
        self._metrics.variants_cut_apart.inc()
        log.warning("Owncast cuts the variants of this stream at different instants (video passthrough?); "
                    "listing each variant on its own, lined up by time. hls.js switches between them (Shaka 4.16 "
                    "mostly); video.js (Owncast's own page) freezes when it switches (docs/hls-rules.md, "
                    "\"Variants cut apart\")")
        self._apart.add(run)
        moved = self.together.take_run(run)
        for slot in moved:
            for index, copy in slot.copies.items():
                lane = self.lane(index, run, variants)
                again = lane.slot(slot.key)
                again.discontinuity |= slot.discontinuity
                lane.add_copy(again, index, copy)
        return max((c.source.duration for slot in moved for c in slot.copies.values()), default=0.0)

    def undecided(self) -> list[Slot]:
        return [*self.together.slots(), *(s for lane in self._lanes.values() for s in lane.slots())]

    @property
    def queued(self) -> int:
        return self.together.queued + sum(lane.queued for lane in self._lanes.values())
