"""A frozen view of the window stays as it was whatever is appended or slides out after it, and a sliding
window keeps few entries it no longer lists."""

from __future__ import annotations

from broadcaster.playlist.entry import Entry
from broadcaster.playlist.segments import ListedSegment
from broadcaster.playlist.window import Window


def entry(n: int, before: Entry | None) -> Entry:
    return Entry(n, ListedSegment(f"https://r2.example/live/0/s-{n}.ts", 1.0, key=f"live/0/s-{n}.ts"), False,
                 1.8e9 + n, float(n), before)


def test_a_frozen_view_stays_as_it_was_and_a_sliding_window_keeps_little_it_no_longer_lists() -> None:
    window, last = Window(), None
    for n in range(2000):
        last = entry(n, last)
        window.append(last)
    views = []
    for n in range(2000, 6000):
        window.popleft()
        last = entry(n, last)
        window.append(last)
        if n % 500 == 0:
            views.append((window.frozen(), [e.sequence for e in window]))
        held = len(window._items)  # the list, popped entries not compacted yet included
        assert held <= len(window) + max(64, held // 16) + 1, (n, held, len(window))
    for view, sequences in views:
        assert [e.sequence for e in view] == sequences
        assert [e.sequence for e in reversed(view)] == sequences[::-1]
        assert view.first is not None and view.first.sequence == sequences[0] and len(view) == len(sequences)
        assert [e.sequence for e in view.newest(3)] == sequences[-3:]
