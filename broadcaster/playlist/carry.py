"""What a restart lists again of the entries it found never shown (ManifestGenerator.restart's `carry_to`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from . import hls
from .entry import Entry
from .segments import ListedSegment

Again = tuple[ListedSegment, float, int]  # a segment with its own date and discontinuity, when listed, its number


def carried(entries: Sequence[Entry], target_duration: int, carry_to: int) -> tuple[list[Again], list[ListedSegment]]:
    """The entries listed again, under their own numbers or (never served, they may move up) numbered to
    end just below `carry_to`; and those that leave: from the first that does not fit `target_duration` on
    (after that hole, none could keep the discontinuity number its moment has, 6.2.4)."""
    fits = [hls.fits_target(e.segment.duration, target_duration) for e in entries]
    kept = fits.index(False) if False in fits else len(fits)
    shift = max(0, carry_to - entries[kept - 1].sequence - 1) if kept else 0  # consecutive numbers
    again = [(replace(e.segment, program_date_time=e.program_date_time, discontinuity=e.discontinuity), e.listed_at,
              e.sequence + shift) for e in entries[:kept]]
    return again, [e.segment for e in entries[kept:]]
