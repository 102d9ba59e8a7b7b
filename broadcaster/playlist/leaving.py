"""Leaving: the segments that left a playlist, each with how long it must stay downloadable (6.2.2):
its duration and the longest the playlist was while it listed it."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from .entry import Entry
from .segments import ListedSegment, Removed


class Leaving:
    """`_peaks`: (sequence, playlist duration once it was appended), durations decreasing: the longest
    playlist a segment was in is the first peak from its sequence on."""

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
