"""VariantPlaylist: one variant's live playlist, the one owner of its ManifestGenerator (PlaylistReads:
what it is now; VariantPlaylist: the intents that change it). Where a playlist restarts is decided here
only (docs/hls-rules.md); how far each pathway lists it is pathway_views.PathwayViews'. Clips are cut
from what the Release told was shown, never from what is listed but not yet saved.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from ..playlist import hls
from ..playlist.manifest import ManifestGenerator, SegmentRejected
from ..playlist.options import WindowOptions
from ..playlist.rendered import Rendered, Version
from ..playlist.segments import ListedSegment, Removed
from ..playlist.window import Window
from . import playlist_memory
from .landings import Landing, Landings
from .listed_keys import KeyIndex
from .pathway_views import PathwayViews
from .pathways import PathwayPlan

__all__ = ["RemovedHook", "SegmentRejected", "VariantPlaylist"]

log = logging.getLogger(__name__)

RemovedHook = Callable[[list[Removed]], None]


def _between(window: Window, shown: int, start: float, end: float, newest: int | None = None
             ) -> list[ListedSegment]:
    """What clips are cut from: the entries numbered up to `shown` that overlap [start, end) by
    PROGRAM-DATE-TIME, each with its date and discontinuity as listed; `newest`: only the last that many.
    Read from the window's end: a long window costs what the clip asks for."""
    out: list[ListedSegment] = []
    for e in reversed(window):
        if newest is not None and len(out) >= newest:
            break
        if e.sequence <= shown and e.program_date_time < end and e.program_date_time + e.segment.duration > start:
            out.append(replace(e.segment, program_date_time=e.program_date_time, discontinuity=e.discontinuity))
    return out[::-1]


class PlaylistReads:
    """What one variant's playlist is now, read only."""

    index: int
    _gen: ManifestGenerator | None
    _views: PathwayViews
    landings: Landings  # the uploads of what it lists, on their way
    _keys: KeyIndex
    _first: str
    _shown_targets: dict[str, int | None]

    @property
    def opened(self) -> bool:
        return self._gen is not None

    @property
    def segment_count(self) -> int:
        return self._gen.segment_count if self._gen is not None else 0

    @property
    def next_sequence(self) -> int:
        return self._gen.next_sequence if self._gen is not None else 0

    @property
    def media_sequence(self) -> int:
        return self._gen.media_sequence if self._gen is not None else 0

    @property
    def ended(self) -> bool:
        return self._gen is not None and self._gen.ended

    @property
    def target_duration(self) -> int | None:
        return self._gen.target_duration if self._gen is not None else None

    @property
    def last_discontinuity(self) -> int:
        return self._gen.last_discontinuity if self._gen is not None else 0

    def next_discontinuity(self, discontinuity: bool) -> int:
        return self._gen.next_discontinuity(discontinuity) if self._gen is not None else 0

    @property
    def listing(self) -> bool:
        """Listing something: it takes part in every slot, and gives the others its numbers."""
        return self.segment_count > 0

    def uris(self) -> list[str]:
        return self._gen.uris() if self._gen is not None else []

    def uris_by_key(self) -> dict[str, str]:
        gen = self._gen
        return {e.segment.key: e.segment.uri for e in gen.window if e.segment.key} if gen is not None else {}

    def found(self, pathway: str, key: str) -> tuple[int, str | None] | None:
        gen = self._gen
        if gen is None:
            return None
        return self._views.found(pathway, key, self._keys.at(gen.window, gen.changes, key),
                                 vm=pathway == hls.VM_PATHWAY)

    def visible(self, edge: bool = False) -> Rendered | None:
        gen = self._gen
        if gen is None or not self._showable(gen):
            return None
        return gen.render_edge() if edge else gen.render()

    @staticmethod
    def _showable(gen: ManifestGenerator | None) -> bool:
        """Something to show: segments, or an end (empty, never live)."""
        return gen is not None and (gen.segment_count > 0 or gen.ended) and gen.showable

    @property
    def on_former(self) -> frozenset[str]:
        return self._views.on_former

    def former_done(self, pathway: str) -> bool:
        return self._views.former_done(pathway)

    def version_target(self, pathway: str) -> int | None:
        """The target duration `pathway`'s version is under now (the former playlist's while it lists it)."""
        former = self._views.former
        return former.playlist.target_duration if former is not None and pathway in former.views \
            else self.target_duration

    def shown_target(self, pathway: str) -> int | None:
        return self._shown_targets.get(pathway)

    def saved(self, now: float) -> dict[str, object] | None:
        return playlist_memory.snapshot(self._gen, now) if self._gen is not None else None

    def views_saved(self) -> dict[str, object]:
        return self._views.saved(self.next_sequence - 1)

    def shown_span(self) -> tuple[float, float] | None:
        """(start, end) by PROGRAM-DATE-TIME of what it lists and the first bucket's playlist showed."""
        gen = self._gen
        if gen is None or gen.window.first is None:
            return None
        last = _between(gen.window, self._views.shown_on(self._first), float("-inf"), float("inf"), newest=1)
        if not last:
            return None
        return gen.window.first.program_date_time, (last[-1].program_date_time or 0.0) + last[-1].duration

    def shown_between(self, start: float, end: float) -> builtins.list[ListedSegment]:
        """The segments the first bucket's playlist showed, still listed, that overlap [start, end)."""
        gen = self._gen
        return _between(gen.window, self._views.shown_on(self._first), start, end) if gen is not None else []

    def behind(self) -> set[str]:
        """The pathways that have not shown all that any pathway showed of it."""
        return self._views.behind(self._views.shown_anywhere) if self._gen is not None else set()


class VariantPlaylist(PlaylistReads):
    def __init__(self, index: int, options: WindowOptions, on_removed: RemovedHook,
                 generator: ManifestGenerator | None = None, plan: PathwayPlan | None = None) -> None:
        """`generator`: a restored playlist's (None: opened once the target duration is known)."""
        self.index = index
        self._options = options
        self._on_removed = on_removed
        self._gen = generator
        plan = plan or PathwayPlan()
        self.landings = Landings(p.id for p in plan.buckets)
        self._views = PathwayViews(plan, self.landings)
        self._first = plan.first.id
        self._keys = KeyIndex()  # found()'s lookup, rebuilt once per change
        self._shown_targets: dict[str, int | None] = {}  # the target of each pathway's version shown last
        self.last_run: int | None = None  # the run of the last slot listed here
        self.run_numbers: dict[int, int] = {}  # run -> the discontinuity number it last listed it under
        self.last_listed: float | None = None  # monotonic, when it last listed a segment
        self.restarts = 0  # its playlist restarted (retarget, rejoin, continue_above): the Release's epoch

    def versions(self, now: float, edge: bool = False) -> dict[str, Version]:
        """Its version on each pathway (`edge`: the first bucket's alone)."""
        gen = self._gen
        if gen is None:
            self._views.advance(None)  # a former playlist may still list on
        else:
            if self.landings.waiting:
                landed, nowhere = self.landings.settle(lambda: self._views.listed_keys(gen))
                for key in landed:  # listed late: it stays about a window from now
                    gen.landed(key, now)
                for key in nowhere:  # a gap on every pathway: a clip or the rewind never names it again
                    gen.unavailable(key)
                    self._views.nowhere(key)
            gen.keep_through(self._views.advance(gen), now)
            self._views.trim(gen.media_sequence)
        self._drain()
        return self._views.versions(gen, self._showable(gen), edge)

    def leave_former(self, pathway: str) -> None:
        """`pathway` lists the new playlist from now on."""
        self._remove(self._views.leave_former(pathway))

    def left(self, leaving: Iterable[tuple[str, float]], now: float) -> None:
        """Keys a restored state says left the window (key, seconds kept): on to the cleaner."""
        self._remove([Removed(ListedSegment("", 0.0, key=key), now, keep) for key, keep in leaving])

    def restore_views(self, data: object) -> None:
        self._views.restore(data, self._gen)

    def shown(self, pathway: str, rendered: Version) -> bool:
        """`rendered` is visible on `pathway`; True when it showed the former playlist as far as it went."""
        self._views.saw(pathway, rendered.last_sequence)
        self._shown_targets[pathway] = self.version_target(pathway)
        return pathway in self._views.on_former and self.former_done(pathway)

    def forget_shown(self) -> None:
        self._views.forget_shown()
        self._shown_targets.clear()

    # -- the intents ------------------------------------------------------------------------------------

    def open(self, target: int, independent: bool, now: float, above: tuple[int, int] | None = None) -> None:
        """The first playlist, under `target`; `above`: (sequence, discontinuity floor) to continue at."""
        if self._gen is not None:
            raise ValueError(f"variant {self.index}: its playlist is open already")
        self._gen = ManifestGenerator(target, self._options, independent_segments=independent)
        if above is not None:
            self._gen.continue_above(above[0], above[1], now)
            self._drain()

    def list(self, segment: ListedSegment, run: int | None, now: float, sequence: int, wall: float,
             landings: Mapping[str, Landing] | None = None) -> int:
        """List a segment (or a gap: EXT-X-GAP) of `run` under `sequence`; returns its number. `landings`:
        its uploads not landed yet. SegmentRejected: refused (the next segment carries a discontinuity)."""
        gen = self._opened()
        hold = self._views.before_append(gen)
        if hold is not None:
            gen.keep_through(hold)
        try:
            number = gen.append(segment, now, sequence, wall=wall)
        except SegmentRejected:
            gen.mark_gap()
            raise
        if landings and segment.key and not segment.gap:
            self.landings.pend(segment.key, landings)
        if run is not None:
            self.last_run, self.run_numbers[run] = run, gen.last_discontinuity
            if len(self.run_numbers) > 4:
                del self.run_numbers[next(iter(self.run_numbers))]
        if not segment.gap:
            self.last_listed = now  # a gap is nothing listed (/health)
        self._drain()
        return number

    def gap(self) -> None:
        """A segment before the next will never come: the next carries a discontinuity."""
        if self._gen is not None:
            self._gen.mark_gap()

    def end(self) -> bool:
        """EXT-X-ENDLIST (6.2.1); True when that closed it now."""
        gen = self._gen
        if gen is None or gen.ended:
            return False
        gen.end()
        return gen.ended

    def join(self, discontinuity_number: int, discontinuity: bool) -> None:
        """An empty playlist joins variants already listing: its first segment gets their number."""
        self._opened().join(discontinuity_number, discontinuity)

    def drop_hashes(self) -> None:  # P2P turned off
        if self._gen is not None:
            self._gen.drop_hashes()

    def retarget(self, target: int, now: float, *, new_timeline: bool, keep_former: frozenset[str] = frozenset(),
                 carry_to: int = 0) -> builtins.list[ListedSegment]:
        """A new playlist at the same address under a new target: what clients saw leaves, the rest starts
        it; returns what does not fit. `keep_former`: the pathways that go on listing this one up to the last
        number shown; `carry_to`: what it carries ends below it (ManifestGenerator.restart)."""
        gen = self._gen
        if gen is None:
            return []
        shown = self._views.shown_anywhere
        frozen = gen.frozen() if keep_former and gen.segment_count else None
        self._remove(self._views.restarting(frozen, set(keep_former) if frozen is not None else set(), shown))
        gen.keep_through(None)
        self.restarts += 1
        left = gen.restart(target, now, new_timeline=new_timeline, served_through=shown, carry_to=carry_to)
        self._drain()
        return left

    def rejoin(self, sequence: int, discontinuity_sequence: int, now: float) -> builtins.list[ListedSegment]:
        """Back in Owncast's stream after streams without it: a new playlist at `sequence`; returns what it
        listed and never showed (that leaves unseen)."""
        gen = self._opened()
        unseen = [e.segment for e in gen.window if e.sequence > self._views.shown_anywhere and not e.segment.gap]
        self._forget_views()
        self.restarts += 1
        gen.restart(gen.target_duration, now, sequence=sequence, discontinuity_sequence=discontinuity_sequence)
        self._drain()
        log.info("variant %d: back in Owncast's stream; its playlist starts again at %d", self.index, sequence)
        return unseen

    def continue_above(self, sequence: int, floor: int, now: float) -> None:
        """Give up the window and continue at `sequence`, above discontinuity `floor` (hls.continue_above)."""
        if self._gen is not None:
            self._forget_views()
            self.restarts += 1
            self._gen.continue_above(sequence, floor, now)
            self._drain()

    def _forget_views(self) -> None:
        left = self._views.forget()
        if self._gen is not None:
            self._gen.keep_through(None)
        self._remove(left)

    def _opened(self) -> ManifestGenerator:
        if self._gen is None:
            raise ValueError(f"variant {self.index}: its playlist is not open yet")
        return self._gen

    def _drain(self) -> None:
        gen = self._gen
        if gen is None:
            return
        self._remove(self._views.hold_back(gen.drain_removed()))  # a pathway may list them on the former

    def _remove(self, removed: builtins.list[Removed]) -> None:
        if removed:
            self._on_removed(removed)
