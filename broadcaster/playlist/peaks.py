"""Peaks: how long the playlist has been since each listed segment was appended (6.2.2)."""

from __future__ import annotations

from collections import deque


class Peaks:
    """(sequence, playlist duration once it was appended), durations decreasing: the longest playlist
    a segment was in is the first entry from its sequence on (how long it must stay once removed)."""

    __slots__ = ("_peaks",)

    def __init__(self) -> None:
        self._peaks: deque[tuple[int, float]] = deque()

    def clear(self) -> None:
        self._peaks.clear()

    def appended(self, sequence: int, duration: float) -> None:
        while self._peaks and self._peaks[-1][1] <= duration:
            self._peaks.pop()
        self._peaks.append((sequence, duration))

    def longest(self, sequence: int) -> float:
        """The longest the playlist has been since `sequence` was appended (6.2.2)."""
        while len(self._peaks) > 1 and self._peaks[0][0] < sequence:
            self._peaks.popleft()  # appended before any segment still listed: no longer needed
        return self._peaks[0][1] if self._peaks else 0.0
