"""What clips are cut from: the segments of a variant's playlist that clients were shown in the first
bucket's playlist (what is in the bucket), never what is listed but not yet saved and shown. Read from
the window's end: a long window costs what the clip asks for."""

from __future__ import annotations

from dataclasses import replace

from ..playlist.segments import ListedSegment
from ..playlist.window import Window


def between(window: Window, shown: int, start: float, end: float, newest: int | None = None) -> list[ListedSegment]:
    """The entries numbered up to `shown` that overlap [start, end) by PROGRAM-DATE-TIME, each with its date
    and discontinuity as listed; `newest`: only the last that many of them."""
    out: list[ListedSegment] = []
    for e in reversed(window):
        if newest is not None and len(out) >= newest:
            break
        if e.sequence <= shown and e.program_date_time < end and e.program_date_time + e.segment.duration > start:
            out.append(replace(e.segment, program_date_time=e.program_date_time, discontinuity=e.discontinuity))
    return out[::-1]


def span(window: Window, shown: int) -> tuple[float, float] | None:
    """(start, end) by PROGRAM-DATE-TIME of the entries numbered up to `shown`, or None."""
    last = between(window, shown, float("-inf"), float("inf"), newest=1)
    first = window.first
    if not last or first is None:
        return None
    return first.program_date_time, (last[-1].program_date_time or 0.0) + last[-1].duration
