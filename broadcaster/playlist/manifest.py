"""ManifestGenerator: the rolling window of one variant's live media playlist, and the rules that
move it (what is listed, numbered, tagged and dropped; docs/hls-rules.md, sections cited inline).

Pure and synchronous: no I/O, the time is passed in, so every rule can be tested without sleeping.
Its entries are a Window (window.py); its versions are rendered once per change (renderer.py) and
that cached rendering (rendered.py) is handed out to every request.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import count, islice

from ..tails import Tail
from . import hls
from .entry import Entry
from .options import WindowOptions
from .peaks import Peaks
from .renderer import Renderer
from .rendered import Rendered
from .segments import ListedSegment, Removed
from .window import Window


# Change marks, unique across every generator: a view that renders one playlist and then another (a
# pathway still behind at a restart, views.py) never takes a version of one for the other's.
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


class ManifestGenerator:
    """Sliding-window live playlist for one variant (docs/hls-rules.md, sections cited inline)."""

    def __init__(self, target_duration: int, options: WindowOptions, *, independent_segments: bool = True) -> None:
        if target_duration < 1:
            raise ValueError("target duration must be an integer >= 1 (4.4.3.1)")
        self.target_duration = target_duration
        self.options = options
        # 6.2.2: never shorter than three target durations.
        self.window_seconds = max(options.seconds, hls.min_window_seconds(target_duration))
        self.independent_segments = independent_segments
        # Delta updates are answered by the same origin, and only pay off in a long enough window.
        self.can_skip = options.can_block_reload and hls.offers_delta_updates(self.window_seconds, target_duration)
        self._window = Window()  # the entries listed (its records' ids count the entries appended)
        self._versions = Renderer()  # its versions, rendered once per change
        self._next_sequence = 0
        self._media_sequence = 0
        self._discontinuity_sequence = 0
        self._ended = False
        self._pending_discontinuity = False
        # Emptied by a restart that keeps the timeline: the next segment's own discontinuity flag counts.
        self._continues = False
        # A restart counted the next segment's new timeline, none appended since: the next restart does not.
        self._timeline_counted = False
        self._regrowing = False  # continued above a state: not shown until three target durations long
        self._removed: list[Removed] = []
        self._peaks = Peaks()
        # Counted for the pathways' views (playlist/views.py), which render versions of their own.
        self.changes = next(_MARKS)  # new at every change of what a version would say
        self.replacements = next(_MARKS)  # new every time the entries were replaced (what a view froze is stale)
        # The last number the pathway furthest behind lists (views.py), None when none is behind: an entry
        # leaves only once that pathway's version is a window long without it (_slide; keep_through).
        self._hold: int | None = None

    def _changed(self) -> None:
        self.changes = next(_MARKS)
        self._versions.changed()

    def _replaced(self) -> None:
        self.replacements = next(_MARKS)
        self._versions.replaced()

    def frozen(self) -> ManifestGenerator:
        """This playlist as it is now, for the pathways still behind when it restarts (a new target): it
        changes no more; they list the rest of it from here before they list the new one."""
        twin = copy.copy(self)
        twin._window = self._window.replaced(list(self._window))
        twin._versions = Renderer()
        twin._removed = []
        twin._peaks = Peaks()
        twin._hold = None
        twin._changed()
        return twin

    # -- state -------------------------------------------------------------------------------------

    @property
    def can_block_reload(self) -> bool:
        """Only an origin that holds requests may say so; a playlist copied to a bucket must not (6.2.5.2)."""
        return self.options.can_block_reload

    @property
    def start_at_edge(self) -> bool:
        """A window longer than players keep behind the edge (REWIND_SECONDS) says where to start."""
        return self.options.start_at_edge

    @property
    def media_sequence(self) -> int:
        return self._media_sequence

    @property
    def discontinuity_sequence(self) -> int:
        return self._discontinuity_sequence

    @property
    def next_sequence(self) -> int:
        """The media sequence number the next appended segment will get."""
        return self._next_sequence

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def segment_count(self) -> int:
        return len(self._window)

    @property
    def window(self) -> Window:
        """The entries listed (what the renderer reads; changed only here)."""
        return self._window

    @property
    def window_duration(self) -> float:
        return self._window.duration

    @property
    def showable(self) -> bool:
        """False after continue_above until the window is three target durations long again: a player
        that saw the window given up must not see the playlist shrink below that (6.2.2)."""
        return not self._regrowing

    @property
    def last_discontinuity(self) -> int:
        """The discontinuity number (hls.js's cc) of the last segment listed, or of the sequence."""
        return self._discontinuity_sequence + self._window.tagged

    def next_discontinuity(self, discontinuity: bool) -> int:
        """The discontinuity number the next segment appended gets, `discontinuity` being its flag."""
        tagged = self._pending_discontinuity or ((bool(self._window) or self._continues)
                                                 and (discontinuity or self._ended))
        return self.last_discontinuity + tagged

    def join(self, discontinuity_number: int, discontinuity: bool) -> None:
        """An empty playlist joins variants already listing (6.2.4): its first segment (`discontinuity`: its
        flag) gets their discontinuity number, never a lower one than its own. Its EXT-X-DISCONTINUITY
        counts: a gap marked, or, emptied by a restart that kept the timeline, its flag or an end before."""
        if self._window:
            raise ValueError("only an empty playlist joins at another's discontinuity number")
        tagged = self.next_discontinuity(discontinuity) - self.last_discontinuity
        self._discontinuity_sequence = max(self._discontinuity_sequence, discontinuity_number - tagged)
        self._changed()

    def uris(self) -> list[str]:
        return [e.segment.uri for e in self._window]

    # -- changes -----------------------------------------------------------------------------------

    def mark_gap(self) -> None:
        """A segment between the last listed one and the next will never come (lost or rejected)."""
        if self._window:
            self._pending_discontinuity = True

    def continue_above(self, sequence: int, discontinuity_sequence: int, now: float) -> None:
        """Give up the window and continue at `sequence` (hls.continue_above): the numbers in between
        may have named other segments, so nothing listed before is listed again. The next segment
        carries EXT-X-DISCONTINUITY; the segments given up are drained as removed."""
        while self._window:
            first = self._window.popleft()
            keep = first.segment.duration + self._peaks.longest(first.sequence)
            self._removed.append(Removed(first.segment, now, keep))
        self._peaks.clear()
        self._next_sequence = self._media_sequence = sequence
        self._discontinuity_sequence = discontinuity_sequence
        self._pending_discontinuity = True
        self._continues = self._timeline_counted = False
        self._regrowing = True
        self._ended = False
        self._changed()

    def append(
        self, segment: ListedSegment, now: float, sequence: int | None = None, wall: float | None = None
    ) -> int:
        """List a segment that is already downloadable (6.2.1); returns its media sequence number.

        `sequence` keeps variants numbered alike (6.2.4): an empty playlist starts at it; after that
        it must be the next number, since a sequence number cannot be skipped (6.2.2).
        `now` decides how long a segment has been listed (pass a monotonic clock); `wall` (default
        `now`) dates a segment that came without PROGRAM-DATE-TIME.
        """
        if sequence is not None and sequence != self._next_sequence:
            if self._window:
                raise SegmentRejected(f"sequence {sequence} does not follow {self._next_sequence - 1}")
            self._next_sequence = self._media_sequence = sequence
        if not hls.fits_target(segment.duration, self.target_duration):
            raise SegmentRejected(
                f"EXTINF {segment.duration:.3f}s does not fit target duration {self.target_duration}s"
            )
        previous = self._window.last
        # A pending discontinuity applies to the first segment too: after continue_above.
        discontinuity = self._pending_discontinuity or (
            (previous is not None or self._continues) and (segment.discontinuity or self._ended)
        )
        pdt = segment.program_date_time
        if pdt is None:
            # 6.2.1: PDT is on every segment; synthesize a continuous clock when Owncast gave none.
            if previous is not None and not discontinuity:
                pdt = previous.program_date_time + previous.segment.duration
            else:
                pdt = (now if wall is None else wall) - segment.duration
        entry = Entry(self._next_sequence, segment, discontinuity, pdt, now, previous)
        if not self._window:
            self._peaks.clear()
            self._replaced()  # a new run of numbers: nothing frozen applies
        self._window.append(entry)
        self._next_sequence += 1
        self._pending_discontinuity = self._continues = self._timeline_counted = False
        self._ended = False  # a stream that comes back continues the same playlist
        if self._regrowing and self._window.duration >= hls.min_window_seconds(self.target_duration):
            self._regrowing = False
        self._peaks.appended(entry.sequence, self._window.duration)
        self._slide(now)
        self._changed()
        return entry.sequence

    def restart(self, target_duration: int, now: float, *, sequence: int = 0,
                discontinuity_sequence: int = 0, new_timeline: bool = True,
                served_through: int | None = None, carry_to: int = 0) -> list[ListedSegment]:
        """A new playlist at the same address, for a new target duration (docs/hls-rules.md, "A new target
        duration"): every segment leaves at once (kept downloadable as any removed one), and the next one
        starts the new window. Numbers continue above every one served. With `new_timeline` (the default)
        the next segment's discontinuity number is above every one before it, so a player that reloads sees
        a jump forward past a discontinuity, never a number or a timeline going back; without (variants cut
        apart, raised from one of them) the next segment keeps the number it would have had, as its
        timestamps and dates go on (4.4.3.3 asks a discontinuity for none of this), so variants that
        restart at different segments still give one moment one number (6.2.4). `sequence` and
        `discontinuity_sequence` start it higher still: where the other variants are (a variant that comes
        back after streams without it).

        `served_through`: the last number a client may have seen. The segments after it were listed but never
        shown (their version waited for a save, or was replaced in the same turn): they start the new playlist
        under the numbers they had, or moved up to end just below `carry_to` (never served: where the other
        variants' next one is), instead of leaving unseen. Returns those that leave: from the first that does
        not fit the new target (a lower one) on (_carry); the next segment marks the gap."""
        if target_duration < 1:
            raise ValueError("target duration must be an integer >= 1 (4.4.3.1)")
        carried = [e for e in self._window if served_through is not None and e.sequence > served_through]
        # After carried segments, the next one is tagged when it starts a new timeline too: the carried
        # ones stay on theirs.
        gap_after = bool(carried) and (new_timeline or self._pending_discontinuity or self._ended)
        for e in islice(self._window, len(self._window) - len(carried)):
            keep = e.segment.duration + self._peaks.longest(e.sequence)
            self._removed.append(Removed(e.segment, now, keep))
            if e.discontinuity:
                self._discontinuity_sequence += 1
        served = len(self._window) > len(carried)
        if new_timeline:
            # The next segment starts a new timeline, counted here, in every variant alike (all restart
            # together, also one that listed nothing yet), so discontinuity numbers stay the same across them.
            # With segments carried, its tag counts it (_carry): they keep the number they had, the first
            # one too, whose own tag the new playlist does not render (it is its first entry): counted
            # here instead. Without, a carried first segment of a new stream fell back to the number
            # before its discontinuity, under which the other variants list an earlier moment (6.2.4).
            first_tag = bool(carried) and carried[0].discontinuity
            self._discontinuity_sequence = (
                max(self._discontinuity_sequence + first_tag, discontinuity_sequence - 1) if carried
                else max(self._discontinuity_sequence + (not self._timeline_counted), discontinuity_sequence))
            self._timeline_counted = not carried
            self._pending_discontinuity = False
            self._continues = False
        else:
            # A gap marked, or an end, before the restart still comes before the next segment.
            self._discontinuity_sequence = max(self._discontinuity_sequence, discontinuity_sequence)
            # With segments carried over, it comes after them (_carry).
            self._pending_discontinuity = (self._pending_discontinuity or (self._ended and served)) and not carried
            self._continues = self._continues or bool(self._window)
        self._window.clear()
        self._replaced()
        self._peaks.clear()
        self._next_sequence = self._media_sequence = max(self._next_sequence, sequence)
        # Raised from another variant's lane (variants cut apart: the timeline kept) after this one ended:
        # its end will not come again, so the new playlist is ended too, after what it carries or empty
        # (a player that reloads it sees the end, under the target every variant has: 6.2.1, 6.2.4).
        ended, self._ended = self._ended and not new_timeline, False
        self.target_duration = target_duration
        self.window_seconds = max(self.options.seconds, hls.min_window_seconds(target_duration))
        self.can_skip = self.can_block_reload and hls.offers_delta_updates(self.window_seconds, target_duration)
        self._changed()
        left = self._carry(carried, now, gap_after, carry_to)
        if ended:
            self.end()
        return left

    def _carry(self, carried: list[Entry], now: float, gap_after: bool, carry_to: int) -> list[ListedSegment]:
        """List again, with their own dates and discontinuities, the segments a restart found never
        shown, under their own numbers or, given `carry_to` (a new timeline), numbered on to end just
        below it (where the other variants go on: never served, they may move up). From the first that
        does not fit on, they leave: listed after that hole, one could keep neither the discontinuity
        number the other variants give its moment (6.2.4) nor its own (the dates jump). A gap or an end
        after them follows them."""
        left: list[ListedSegment] = []
        fits = [hls.fits_target(e.segment.duration, self.target_duration) for e in carried]
        kept = fits.index(False) if False in fits else len(fits)  # the first that does not fit, and after
        shift = max(0, carry_to - carried[kept - 1].sequence - 1) if kept else 0  # consecutive numbers
        for e in carried[kept:]:
            left.append(e.segment)
            self._removed.append(Removed(e.segment, now, e.segment.duration))
        for e in carried[:kept]:
            segment = replace(e.segment, program_date_time=e.program_date_time, discontinuity=e.discontinuity)
            self.append(segment, e.listed_at, e.sequence + shift)
        if left:
            self.mark_gap()
        if gap_after:
            self._pending_discontinuity = True
        return left

    def end(self) -> None:
        """6.2.1: the stream ended; EXT-X-ENDLIST is appended and the playlist stops changing. Empty, only
        once it numbered segments: a restart (a new target, raised from another variant's lane) left it
        nothing to list, and its end must still show, under the new target (6.2.4)."""
        if not self._ended and (self._window or self._next_sequence > 0):
            self._ended = True
            self._changed()

    def _slide(self, now: float) -> None:
        """Remove from the front while the rest still covers the window (6.2.2).

        A segment also stays until it has been listed for about a window, so a burst of backlog does
        not slide segments out before a polling player had the chance to see it. With a pathway behind
        the others (`hold`), the window measured is its version's: every pathway's is a window long.
        """
        min_listed = self.window_seconds - self.target_duration
        window = self._window
        duration = window.duration
        hold = self._hold
        if hold is not None:
            for e in reversed(window):
                if e.sequence <= hold:
                    break
                duration -= e.segment.duration
        while len(window) > 1:
            first = window.first
            assert first is not None
            if hold is not None and first.sequence >= hold:
                break  # the pathway behind lists nothing after it yet
            if duration - first.segment.duration < self.window_seconds:
                break
            if now - first.listed_at < min_listed:
                break
            window.popleft()
            duration -= first.segment.duration
            keep = first.segment.duration + self._peaks.longest(first.sequence)
            self._removed.append(Removed(first.segment, now, keep))
            self._media_sequence += 1  # 6.2.2: +1 per removed segment
            if first.discontinuity:  # 4.4.3.3: its EXT-X-DISCONTINUITY left with it
                self._discontinuity_sequence += 1
            self._changed()

    def keep_through(self, through: int | None, now: float | None = None) -> None:
        """The pathway furthest behind lists up to `through` (None: none is behind), `_slide`'s hold; `now`:
        what every pathway is done with leaves at once (else at the next append)."""
        if through != self._hold:
            self._hold = through
            if now is not None:
                self._slide(now)

    def landed(self, key: str, now: float) -> None:
        """The segment listed under `key` reached its pathway only now (the bucket's, behind the VM's: an
        upload after an outage): it stays listed about a window from now, as if listed now, so a burst of
        backlog does not slide out before a polling player of that pathway had the chance to see it."""
        for entry in reversed(self._window):
            if entry.segment.key == key:
                entry.listed_at = max(entry.listed_at, now)
                return

    def unavailable(self, key: str) -> int | None:
        """The segment listed under `key` can be had from no pathway after all (its upload, listed ahead
        of it on the VM's pathway, failed for good, and the VM's copy is gone): a gap from now on
        (EXT-X-GAP, 4.4.4.7), so no player asks for it. Returns its number (None: not listed)."""
        e = next((e for e in self._window if e.segment.key == key and not e.segment.gap), None)
        if e is None:
            return None
        gone = e.segment
        self._relist(lambda each: replace(each, gap=True, sha256=None) if each is gone else each)
        return e.sequence

    def drop_hashes(self) -> None:
        """List no segment's hash (P2P was turned off since the state these entries came from was saved)."""
        if any(e.segment.sha256 for e in self._window):
            self._relist(lambda each: replace(each, sha256=None))

    def _relist(self, change: Callable[[ListedSegment], ListedSegment]) -> None:
        self._window = self._window.replaced(_relisted(self._window, change))
        self._replaced()  # what a view froze of them is stale
        self._changed()

    def drain_removed(self) -> list[Removed]:
        """Segments that left the window since the last call."""
        removed, self._removed = self._removed, []
        return removed

    # -- persistence (its format and checks: publish/playlist_memory.py) ----------------------------

    def saved(self) -> Saved:
        """Everything but the entries needed to continue this playlist after a restart."""
        # Restored entries all count as listed in it: at worst they stay longer than needed.
        return Saved(self.target_duration, self.independent_segments, self._media_sequence,
                     self._discontinuity_sequence, self._next_sequence, self._ended, self._pending_discontinuity,
                     self._continues, self._regrowing, self._peaks.longest(self._media_sequence))

    def records(self) -> Tail:
        """The entries' records, each encoded once, when it was listed (with the time it was listed on
        this generator's clock), as a Tail: a value, and a save after every listing costs the new ones,
        however long the window (state/journal.py)."""
        return self._window.records()

    # -- output ------------------------------------------------------------------------------------

    def render(self) -> Rendered:
        """The origin's playlist (with SERVER-CONTROL when it can block), and its delta update if offered."""
        return self._versions.render(self)

    def render_edge(self) -> Rendered:
        """The same version for a static host (the bucket): it cannot block or answer _HLS_skip (6.2.5.2)."""
        return self._versions.render_edge(self)


def _relisted(window: Window, change: Callable[[ListedSegment], ListedSegment]) -> list[Entry]:
    """`window`'s entries, those whose segment `change` changes made again."""
    entries: list[Entry] = []
    for e in window:
        seg = change(e.segment)
        entries.append(e if seg is e.segment else Entry(e.sequence, seg, e.discontinuity, e.program_date_time,
                                                        e.listed_at, entries[-1] if entries else None))
    return entries


def resume(saved: Saved, entries: Iterable[tuple[int, ListedSegment, float]], options: WindowOptions) -> ManifestGenerator:
    """The playlist `saved` describes, listing `entries` (number, the segment with its date and
    discontinuity as listed, when it was listed); raises ValueError when they do not line up. The
    generator's other constructor: beside it, as the state it sets is the generator's own."""
    gen = ManifestGenerator(saved.target_duration, options, independent_segments=saved.independent)
    gen._media_sequence, gen._discontinuity_sequence = saved.media_sequence, saved.discontinuity_sequence
    gen._next_sequence, gen._ended = saved.next_sequence, saved.ended
    gen._pending_discontinuity, gen._continues, gen._regrowing = \
        saved.pending_discontinuity, saved.continues, saved.regrowing
    window = gen._window
    for number, segment, listed_at in entries:
        if not hls.fits_target(segment.duration, gen.target_duration):
            raise ValueError(f"a segment of {segment.duration:.3f}s does not fit target duration "
                             f"{gen.target_duration}s")
        window.append(Entry(number, segment, segment.discontinuity, segment.program_date_time or 0.0,
                            listed_at, window.last))
    if window.last is not None:
        gen._peaks.appended(window.last.sequence, max(saved.longest, window.duration))
    sequences = [e.sequence for e in window]
    expected = list(range(gen._media_sequence, gen._media_sequence + len(sequences)))
    if sequences != expected or gen._next_sequence != gen._media_sequence + len(sequences):
        raise ValueError("playlist state is inconsistent (sequence numbers do not line up)")
    return gen

