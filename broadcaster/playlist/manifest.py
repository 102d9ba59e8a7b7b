"""ManifestGenerator: the rolling window of one variant's live media playlist and the rules that move it
(docs/hls-rules.md). Pure and synchronous: the time is passed in, so every rule is tested without sleeping.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import count, islice

from ..tails import Tail
from . import hls
from .entry import Entry, dated
from .options import WindowOptions
from .renderer import Renderer
from .rendered import Rendered
from .segments import ListedSegment, Removed
from .timeline import Timeline
from .window import Window


# Change marks, unique across generators: a view that renders one playlist and then another never takes
# a version of one for the other's.
_MARKS = count(1)


class SegmentRejected(ValueError):
    """The segment would break a playlist rule; it is skipped and the next one marks the gap."""


@dataclass(frozen=True, slots=True)
class Saved:
    """A playlist's numbers and flags, as a restart continues them (ManifestGenerator.saved, resume)."""

    target_duration: int
    independent: bool
    media_sequence: int
    discontinuity_sequence: int
    next_sequence: int
    ended: bool
    pending_discontinuity: bool
    continues: bool  # emptied by a restart that kept the timeline
    regrowing: bool  # continued above a state: not shown until three target durations long
    longest: float  # the longest the playlist has been while its oldest entry was listed


class Leaving:
    """The segments that left a playlist, each kept downloadable for its duration and the longest the
    playlist was while listing it (6.2.2). `_peaks`: (sequence, playlist duration once it was appended),
    durations decreasing: the longest playlist a segment was in is the first peak from its sequence on."""

    __slots__ = ("_peaks", "_removed")

    def __init__(self) -> None:
        self._peaks: deque[tuple[int, float]] = deque()
        self._removed: list[Removed] = []

    def clear(self) -> None:
        self._peaks.clear()

    def appended(self, sequence: int, duration: float) -> None:
        """`sequence` was appended, the playlist `duration` seconds long with it."""
        while self._peaks and self._peaks[-1][1] <= duration:
            self._peaks.pop()
        self._peaks.append((sequence, duration))

    def longest(self, sequence: int) -> float:
        """The longest the playlist has been since `sequence` was appended (6.2.2)."""
        while len(self._peaks) > 1 and self._peaks[0][0] < sequence:
            self._peaks.popleft()  # appended before any segment still listed: no longer needed
        return self._peaks[0][1] if self._peaks else 0.0

    def left(self, entries: Iterable[Entry], now: float) -> None:
        for e in entries:
            self._removed.append(Removed(e.segment, now, e.segment.duration + self.longest(e.sequence)))

    def unseen(self, segments: Iterable[ListedSegment], now: float) -> None:
        """Segments never shown leave: no player can be on them."""
        self._removed.extend(Removed(segment, now, segment.duration) for segment in segments)

    def drain(self) -> list[Removed]:
        removed, self._removed = self._removed, []
        return removed


Again = tuple[ListedSegment, float, int]  # a segment with its own date and discontinuity, when listed, number


def carried(entries: Sequence[Entry], target_duration: int,
            carry_to: int) -> tuple[list[Again], list[ListedSegment]]:
    """The entries listed again, under their own numbers or (never served, they may move up) numbered to
    end just below `carry_to`; and those that leave: from the first that does not fit `target_duration` on
    (after that hole, none could keep the discontinuity number its moment has, 6.2.4)."""
    fits = [hls.fits_target(e.segment.duration, target_duration) for e in entries]
    kept = fits.index(False) if False in fits else len(fits)
    shift = max(0, carry_to - entries[kept - 1].sequence - 1) if kept else 0  # consecutive numbers
    again = [(replace(e.segment, program_date_time=e.program_date_time, discontinuity=e.discontinuity),
              e.listed_at, e.sequence + shift) for e in entries[:kept]]
    return again, [e.segment for e in entries[kept:]]


class ManifestGenerator:
    """Sliding-window live playlist for one variant (docs/hls-rules.md, sections cited inline)."""

    def __init__(self, target_duration: int, options: WindowOptions, *, independent_segments: bool = True) -> None:
        self.options = options
        self.can_block_reload = options.can_block_reload
        self.start_at_edge = options.start_at_edge
        self._target(target_duration)
        self.independent_segments = independent_segments
        self._window = Window()
        self._versions = Renderer()  # its versions, rendered once per change
        self._numbers = Timeline()
        self._leaving = Leaving()
        # For the pathways' views (views.py): new at every change, and at every replacement of the entries.
        self.changes = next(_MARKS)
        self.replacements = next(_MARKS)
        # The last number the pathway furthest behind lists (None: none is behind): nothing it does not
        # list yet leaves (_slide).
        self._hold: int | None = None

    def _target(self, target_duration: int) -> None:
        if target_duration < 1:
            raise ValueError("target duration must be an integer >= 1 (4.4.3.1)")
        self.target_duration = target_duration
        self.window_seconds = max(self.options.seconds, hls.min_window_seconds(target_duration))  # 6.2.2
        self.can_skip = self.can_block_reload and hls.offers_delta_updates(self.window_seconds, target_duration)

    def _changed(self) -> None:
        self.changes = next(_MARKS)
        self._versions.changed()

    def _replaced(self) -> None:
        self.replacements = next(_MARKS)
        self._versions.replaced()

    def frozen(self) -> ManifestGenerator:
        """This playlist as it is now, unchanging, for the pathways still behind when it restarts."""
        twin = copy.copy(self)
        twin._window = self._window.replaced(list(self._window))
        twin._numbers = copy.copy(self._numbers)
        twin._versions = Renderer()
        twin._leaving = Leaving()
        twin._hold = None
        twin._changed()
        return twin

    @property
    def media_sequence(self) -> int:
        return self._numbers.media

    @property
    def discontinuity_sequence(self) -> int:
        return self._numbers.discontinuity

    @property
    def next_sequence(self) -> int:
        """The media sequence number the next appended segment will get."""
        return self._numbers.next

    @property
    def ended(self) -> bool:
        return self._numbers.ended

    @property
    def segment_count(self) -> int:
        return len(self._window)

    @property
    def window(self) -> Window:
        return self._window

    @property
    def showable(self) -> bool:
        """False after continue_above until the window is three target durations long again (6.2.2)."""
        return not self._numbers.regrowing

    @property
    def last_discontinuity(self) -> int:
        """The discontinuity number (hls.js's cc) of the last segment listed, or of the sequence."""
        return self._numbers.discontinuity + self._window.tagged

    def next_discontinuity(self, discontinuity: bool) -> int:
        """The discontinuity number of the next segment appended, `discontinuity` being its flag."""
        return self.last_discontinuity + self._numbers.tags(bool(self._window), discontinuity)

    def join(self, discontinuity_number: int, discontinuity: bool) -> None:
        """An empty playlist takes the discontinuity number of variants already listing, if higher (6.2.4)."""
        if self._window:
            raise ValueError("only an empty playlist joins at another's discontinuity number")
        tagged = self.next_discontinuity(discontinuity) - self.last_discontinuity
        self._numbers.discontinuity = max(self._numbers.discontinuity, discontinuity_number - tagged)
        self._changed()

    def uris(self) -> list[str]:
        return [e.segment.uri for e in self._window]

    def mark_gap(self) -> None:
        """A segment between the last listed one and the next will never come (lost or rejected)."""
        if self._window:
            self._numbers.pending = True

    def continue_above(self, sequence: int, discontinuity_sequence: int, now: float) -> None:
        """Give up the window and continue at `sequence` after a discontinuity (hls.continue_above)."""
        self._leaving.left(self._window, now)
        self._window.clear()
        self._leaving.clear()
        self._numbers.continue_above(sequence, discontinuity_sequence)
        self._changed()

    def append(
        self, segment: ListedSegment, now: float, sequence: int | None = None, wall: float | None = None
    ) -> int:
        """List a segment already downloadable (6.2.1); returns its number. `sequence` keeps variants numbered
        alike (6.2.4): an empty playlist starts at it, then it must be the next. `now`: a monotonic clock;
        `wall` (default `now`) dates a segment without PROGRAM-DATE-TIME."""
        numbers = self._numbers
        if sequence is not None and sequence != numbers.next:
            if self._window:
                raise SegmentRejected(f"sequence {sequence} does not follow {numbers.next - 1}")
            numbers.start_at(sequence)
        if not hls.fits_target(segment.duration, self.target_duration):
            raise SegmentRejected(
                f"EXTINF {segment.duration:.3f}s does not fit target duration {self.target_duration}s"
            )
        previous = self._window.last
        discontinuity = numbers.tags(previous is not None, segment.discontinuity)
        pdt = dated(segment, previous, discontinuity, now if wall is None else wall)
        entry = Entry(numbers.next, segment, discontinuity, pdt, now, previous)
        if not self._window:
            self._leaving.clear()
            self._replaced()  # a new run of numbers: nothing frozen applies
        self._window.append(entry)
        numbers.listed(self._window.duration >= hls.min_window_seconds(self.target_duration))
        self._leaving.appended(entry.sequence, self._window.duration)
        self._slide(now)
        self._changed()
        return entry.sequence

    def restart(self, target_duration: int, now: float, *, sequence: int = 0,
                discontinuity_sequence: int = 0, new_timeline: bool = True,
                served_through: int | None = None, carry_to: int = 0) -> list[ListedSegment]:
        """A new playlist at the same address for a new target duration (docs/hls-rules.md): what was shown
        (up to `served_through`) leaves, the next segment is numbered above every one served (and
        `sequence`), on a new timeline unless not `new_timeline`. The entries never shown start it again
        (carried); returns those that leave instead."""
        self._target(target_duration)  # before anything changes: it may refuse
        unseen = [e for e in self._window if served_through is not None and e.sequence > served_through]
        left = list(islice(self._window, len(self._window) - len(unseen)))
        self._leaving.left(left, now)
        gap_after, ended = self._numbers.restart(left, unseen, new_timeline=new_timeline, sequence=sequence,
                                                 discontinuity_sequence=discontinuity_sequence)
        self._window.clear()
        self._replaced()
        self._leaving.clear()
        self._changed()
        again, gone = carried(unseen, target_duration, carry_to)
        self._leaving.unseen(gone, now)
        for segment, listed_at, number in again:
            self.append(segment, listed_at, number)
        if gone:
            self.mark_gap()
        if gap_after:
            self._numbers.pending = True
        if ended:
            self.end()
        return gone

    def end(self) -> None:
        """6.2.1: EXT-X-ENDLIST; empty, only once it numbered segments (a restart left it nothing to list)."""
        if self._numbers.end(bool(self._window)):
            self._changed()

    def _slide(self, now: float) -> None:
        """Remove from the front what has left the window (Window.sliding, 6.2.2)."""
        for _ in range(self._window.sliding(self.window_seconds, self.target_duration, self._hold, now)):
            first = self._window.popleft()
            self._leaving.left((first,), now)
            self._numbers.slid(first.discontinuity)
            self._changed()

    def keep_through(self, through: int | None, now: float | None = None) -> None:
        """The pathway furthest behind lists up to `through` (None: none is behind); with `now`, what every
        pathway is done with leaves at once (else at the next append)."""
        if through != self._hold:
            self._hold = through
            if now is not None:
                self._slide(now)

    def landed(self, key: str, now: float) -> None:
        """The segment under `key` reached its pathway only now: it stays listed about a window from now."""
        self._window.landed(key, now)

    def unavailable(self, key: str) -> int | None:
        """The segment under `key` can be had from no pathway after all: a gap from now on; its number."""
        e = next((e for e in self._window if e.segment.key == key and not e.segment.gap), None)
        if e is None:
            return None
        gone = e.segment
        self._relist(lambda each: replace(each, gap=True, sha256=None) if each is gone else each)
        return e.sequence

    def drop_hashes(self) -> None:
        """List no segment's hash (P2P was turned off since the state was saved)."""
        if any(e.segment.sha256 for e in self._window):
            self._relist(lambda each: replace(each, sha256=None))

    def _relist(self, change: Callable[[ListedSegment], ListedSegment]) -> None:
        self._window = self._window.relisted(change)
        self._replaced()  # what a view froze of them is stale
        self._changed()

    def drain_removed(self) -> list[Removed]:
        return self._leaving.drain()

    def saved(self) -> Saved:
        """Everything but the entries needed to continue this playlist after a restart."""
        n = self._numbers
        return Saved(self.target_duration, self.independent_segments, n.media, n.discontinuity, n.next, n.ended,
                     n.pending, n.continues, n.regrowing, self._leaving.longest(n.media))

    def records(self) -> Tail:
        """The entries' records, each encoded once when listed: a save costs the new ones (journal.py)."""
        return self._window.records()

    def render(self) -> Rendered:
        """The origin's playlist (with SERVER-CONTROL when it can block), and its delta update if offered."""
        return self._versions.render(self)

    def render_edge(self) -> Rendered:
        """The same version for a static host (the bucket): it cannot block or answer _HLS_skip (6.2.5.2)."""
        return self._versions.render_edge(self)


def resume(saved: Saved, entries: Iterable[tuple[int, ListedSegment, float]], options: WindowOptions) -> ManifestGenerator:
    """The playlist `saved` describes, listing `entries`; ValueError when they do not line up."""
    gen = ManifestGenerator(saved.target_duration, options, independent_segments=saved.independent)
    n = gen._numbers
    n.media, n.discontinuity, n.next, n.ended = (saved.media_sequence, saved.discontinuity_sequence,
                                                 saved.next_sequence, saved.ended)
    n.pending, n.continues, n.regrowing = saved.pending_discontinuity, saved.continues, saved.regrowing
    window = gen._window
    for number, segment, listed_at in entries:
        if not hls.fits_target(segment.duration, gen.target_duration):
            raise ValueError(f"a segment of {segment.duration:.3f}s does not fit target duration "
                             f"{gen.target_duration}s")
        window.append(Entry(number, segment, segment.discontinuity, segment.program_date_time or 0.0,
                            listed_at, window.last))
    if window.last is not None:
        gen._leaving.appended(window.last.sequence, max(saved.longest, window.duration))
    sequences = [e.sequence for e in window]
    expected = list(range(n.media, n.media + len(sequences)))
    if sequences != expected or n.next != n.media + len(sequences):
        raise ValueError("playlist state is inconsistent (sequence numbers do not line up)")
    return gen
