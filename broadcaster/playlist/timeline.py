"""Timeline: the numbers a live playlist continues (media sequence, discontinuity sequence, the next
number) and whether the next segment carries EXT-X-DISCONTINUITY (docs/hls-rules.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .entry import Entry


@dataclass(slots=True)
class Timeline:
    next: int = 0  # the media sequence number the next appended segment gets
    media: int = 0  # EXT-X-MEDIA-SEQUENCE: the first listed segment's
    discontinuity: int = 0  # EXT-X-DISCONTINUITY-SEQUENCE
    ended: bool = False
    pending: bool = False  # a gap marked: the next segment carries EXT-X-DISCONTINUITY
    continues: bool = False  # emptied by a restart keeping the timeline: the next one's own flag counts
    counted: bool = False  # a restart counted the next segment's new timeline: the next restart does not
    regrowing: bool = False  # continued above a state: not shown until three target durations long

    def tags(self, listing: bool, discontinuity: bool) -> bool:
        """Whether the next segment carries EXT-X-DISCONTINUITY (`listing`: the playlist lists some)."""
        return self.pending or ((listing or self.continues) and (discontinuity or self.ended))

    def start_at(self, sequence: int) -> None:
        """An empty playlist starts at `sequence` (6.2.4: variants numbered alike)."""
        self.next = self.media = sequence

    def listed(self, long_enough: bool) -> None:
        """A segment was appended under `next` (`long_enough`: three target durations listed, 6.2.2)."""
        self.next += 1
        self.pending = self.continues = self.counted = self.ended = False
        self.regrowing = self.regrowing and not long_enough

    def end(self, listing: bool) -> bool:
        """6.2.1: the stream ended; False when it had, or when the playlist never numbered a segment."""
        if self.ended or not (listing or self.next > 0):
            return False
        self.ended = True
        return True

    def slid(self, tagged: bool) -> None:
        """The first segment left (6.2.2), its EXT-X-DISCONTINUITY with it when `tagged` (4.4.3.3)."""
        self.media += 1
        self.discontinuity += tagged

    def continue_above(self, sequence: int, discontinuity_sequence: int) -> None:
        """Everything given up: numbers from `sequence` on, the next segment after a discontinuity."""
        self.next = self.media = sequence
        self.discontinuity = discontinuity_sequence
        self.pending = self.regrowing = True
        self.continues = self.counted = self.ended = False

    def restart(self, left: Sequence[Entry], carried: Sequence[Entry], *, new_timeline: bool, sequence: int,
                discontinuity_sequence: int) -> tuple[bool, bool]:
        """The numbers of a new playlist at the same address (ManifestGenerator.restart): `left` leave,
        `carried` start it again. With `new_timeline` the next discontinuity number is above every one
        before (and `discontinuity_sequence`); without, it keeps its number (6.2.4). Returns whether the
        segment after the carried ones is tagged, and whether the new playlist ends."""
        gap_after = bool(carried) and (new_timeline or self.pending or self.ended)
        self.discontinuity += sum(e.discontinuity for e in left)
        if new_timeline:
            # A new timeline, counted here in every variant alike (6.2.4); the first carried segment's own
            # tag is not rendered by the new playlist: counted here instead.
            first_tag = bool(carried) and carried[0].discontinuity
            self.discontinuity = (
                max(self.discontinuity + first_tag, discontinuity_sequence - 1) if carried
                else max(self.discontinuity + (not self.counted), discontinuity_sequence))
            self.counted = not carried
            self.pending = self.continues = False
        else:
            # A gap or an end before the restart comes before the next segment, or after the carried ones.
            self.discontinuity = max(self.discontinuity, discontinuity_sequence)
            self.pending = (self.pending or (self.ended and bool(left))) and not carried
            self.continues = self.continues or bool(left) or bool(carried)
        self.next = self.media = max(self.next, sequence)
        # Raised from another variant's lane after this one ended: the new playlist is ended too (6.2.1).
        ended, self.ended = self.ended and not new_timeline, False
        return gap_after, ended
