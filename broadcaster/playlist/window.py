"""Window: the entries one playlist lists, oldest first, with the sums over them and each one's record as
the state file keeps it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from ..tails import Log, Tail
from .entry import Entry
from .segments import ListedSegment

_COMPACT_AT = 64  # entries popped before the list is compacted into a new one (and a sixteenth of it)
_COMPACT_SHARE = 16


class Window:
    """The entries in a list read from `_lo`, never changed below its end in place (compacting and clearing
    make a new one), so `frozen` is a view of them as they are now that costs nothing."""

    __slots__ = ("_items", "_lo", "_hi", "_records", "duration", "mapped", "tagged")

    def __init__(self, first_id: int = 0) -> None:
        """`first_id`: the id of the first entry's record (ids count the entries appended)."""
        self._items: list[Entry] = []
        self._lo = 0
        self._hi: int | None = None  # a frozen view's end; None: the list's
        self._records = Log(first_id)
        self.duration = 0.0  # seconds listed
        self.mapped = 0  # entries with an EXT-X-MAP (fMP4): the playlist needs version 6
        self.tagged = 0  # entries with EXT-X-DISCONTINUITY (asked per variant per slot: not summed)

    def _end(self) -> int:
        return len(self._items) if self._hi is None else self._hi

    def __len__(self) -> int:
        return self._end() - self._lo

    def __iter__(self) -> Iterator[Entry]:
        return islice(self._items, self._lo, self._hi)

    def __reversed__(self) -> Iterator[Entry]:
        items = self._items
        return islice(reversed(items), len(items) - self._end(), len(items) - self._lo)

    @property
    def first(self) -> Entry | None:
        return self._items[self._lo] if self else None

    @property
    def last(self) -> Entry | None:
        return self._items[self._end() - 1] if self else None

    def newest(self, count: int) -> list[Entry]:
        """The last `count` entries, in order, taken from the end (a long window costs nothing)."""
        end = self._end()
        return self._items[max(self._lo, end - count):end] if count > 0 else []

    def append(self, entry: Entry) -> None:
        self._items.append(entry)
        self._records.add(entry.saved)
        self.mapped += bool(entry.segment.init_uri)
        self.tagged += entry.discontinuity
        self.duration += entry.segment.duration

    def popleft(self) -> Entry:
        first = self._items[self._lo]
        self._lo += 1
        if self._lo >= _COMPACT_AT and self._lo * _COMPACT_SHARE >= len(self._items):
            self._items, self._lo = self._items[self._lo:], 0  # a new list: frozen views keep the old one
        self._records.drop_to(self._records.first + 1)
        self.mapped -= bool(first.segment.init_uri)
        self.tagged -= first.discontinuity
        self.duration = self.duration - first.segment.duration if self else 0.0
        return first

    def clear(self) -> None:
        self._items, self._lo = [], 0
        self._records.drop_to(self._records.end)
        self.duration, self.mapped, self.tagged = 0.0, 0, 0

    def replaced(self, entries: Iterable[Entry]) -> Window:
        """A window of `entries` (the same segments, rendered again) under the same ids and sums."""
        window = Window(first_id=self._records.first)
        for entry in entries:
            window._items.append(entry)
            window._records.add(entry.saved)
        window.duration, window.mapped, window.tagged = self.duration, self.mapped, self.tagged
        return window

    def frozen(self, count: int | None = None) -> Window:
        """These entries (or the first `count`) as they are now, read only; no entry is copied."""
        view = Window.__new__(Window)
        end = self._end() if count is None else self._lo + max(0, min(count, len(self)))
        view._items, view._lo, view._hi = self._items, self._lo, end
        view._records = self._records
        view.duration, view.mapped, view.tagged = self.duration, self.mapped, self.tagged
        for e in islice(self._items, end, self._end()):
            view.duration -= e.segment.duration
            view.mapped -= bool(e.segment.init_uri)
            view.tagged -= e.discontinuity
        if end == self._lo:
            view.duration = 0.0
        return view

    def landed(self, key: str, now: float) -> None:
        """The last entry listed under `key` counts as listed from `now` on, if not later already."""
        for entry in reversed(self):
            if entry.segment.key == key:
                entry.listed_at = max(entry.listed_at, now)
                return

    def relisted(self, change: Callable[[ListedSegment], ListedSegment]) -> Window:
        """This window with the entries whose segment `change` changes made again (replaced)."""
        entries: list[Entry] = []
        for e in self:
            seg = change(e.segment)
            entries.append(e if seg is e.segment else Entry(e.sequence, seg, e.discontinuity, e.program_date_time,
                                                            e.listed_at, entries[-1] if entries else None))
        return self.replaced(entries)

    def sliding(self, seconds: float, target_duration: int, hold: int | None, now: float) -> int:
        """How many of the first entries leave now: while the rest still covers `seconds` (6.2.2), each one
        listed for about that long, so a burst of backlog is seen by polling players. With `hold` (the last
        number a pathway behind lists), the window measured is its version's, and nothing past it leaves."""
        min_listed = seconds - target_duration
        duration = self.duration
        if hold is not None:
            for e in reversed(self):
                if e.sequence <= hold:
                    break
                duration -= e.segment.duration
        leaving, last = 0, len(self) - 1
        for first in self:
            if (leaving >= last or (hold is not None and first.sequence >= hold)
                    or duration - first.segment.duration < seconds or now - first.listed_at < min_listed):
                break
            duration -= first.segment.duration
            leaving += 1
        return leaving

    def records(self) -> Tail:
        """The entries' records as they are now (ids count the entries appended to this window)."""
        return self._records.tail()
