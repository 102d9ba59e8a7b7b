"""Window: the entries one playlist lists, oldest first, with what is counted over them and the record
of each as the state file keeps it.

The one owner of the entries: the generator decides what is listed and dropped (manifest.py; how many
of the first have slid out is `sliding`'s count), the renderings read them (chunks.py), the publisher's memory saves their records (`records`: a Tail, a
value that later changes to the window leave as it was).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Protocol

from ..tails import Log, Tail
from .entry import Entry
from .segments import ListedSegment


class Entries(Protocol):
    """What a rendering reads of the entries a version lists (a Window, or the first ones of it: Upto)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Entry]: ...

    def __reversed__(self) -> Iterator[Entry]: ...

    @property
    def first(self) -> Entry | None: ...

    @property
    def mapped(self) -> int: ...

    def newest(self, count: int) -> list[Entry]: ...


class Window:
    __slots__ = ("_entries", "_records", "duration", "mapped", "tagged")

    def __init__(self, entries: Iterable[Entry] = (), first_id: int = 0) -> None:
        """`first_id`: the id of the first entry's record (ids count the entries appended)."""
        self._entries: deque[Entry] = deque()
        self._records = Log(first_id)
        self.duration = 0.0  # seconds listed
        self.mapped = 0  # entries with an EXT-X-MAP (fMP4): the playlist needs version 6
        self.tagged = 0  # entries with EXT-X-DISCONTINUITY (asked per variant per slot: not summed)
        for entry in entries:
            self.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __reversed__(self) -> Iterator[Entry]:
        return reversed(self._entries)

    @property
    def first(self) -> Entry | None:
        return self._entries[0] if self._entries else None

    @property
    def last(self) -> Entry | None:
        return self._entries[-1] if self._entries else None

    def newest(self, count: int) -> list[Entry]:
        """The last `count` entries, in order, taken from the end (a long window costs nothing)."""
        return list(islice(reversed(self._entries), count))[::-1]

    def append(self, entry: Entry) -> None:
        self._entries.append(entry)
        self._records.add(entry.saved)
        self.mapped += bool(entry.segment.init_uri)
        self.tagged += entry.discontinuity
        self.duration += entry.segment.duration

    def popleft(self) -> Entry:
        first = self._entries.popleft()
        self._records.drop_to(self._records.first + 1)
        self.mapped -= bool(first.segment.init_uri)
        self.tagged -= first.discontinuity
        self.duration = self.duration - first.segment.duration if self._entries else 0.0
        return first

    def clear(self) -> None:
        self._entries.clear()
        self._records.drop_to(self._records.end)
        self.duration, self.mapped, self.tagged = 0.0, 0, 0

    def replaced(self, entries: Iterable[Entry]) -> Window:
        """A window of `entries` in place of these (the same segments, rendered again), under the same
        ids and with the same sums."""
        window = Window(first_id=self._records.first)
        for entry in entries:
            window._entries.append(entry)
            window._records.add(entry.saved)
        window.duration, window.mapped, window.tagged = self.duration, self.mapped, self.tagged
        return window

    def landed(self, key: str, now: float) -> None:
        """The last entry listed under `key` counts as listed from `now` on, if not later already."""
        for entry in reversed(self._entries):
            if entry.segment.key == key:
                entry.listed_at = max(entry.listed_at, now)
                return

    def relisted(self, change: Callable[[ListedSegment], ListedSegment]) -> Window:
        """This window with the entries whose segment `change` changes made again (replaced)."""
        entries: list[Entry] = []
        for e in self._entries:
            seg = change(e.segment)
            entries.append(e if seg is e.segment else Entry(e.sequence, seg, e.discontinuity, e.program_date_time,
                                                            e.listed_at, entries[-1] if entries else None))
        return self.replaced(entries)

    def sliding(self, seconds: float, target_duration: int, hold: int | None, now: float) -> int:
        """How many of the first entries leave now: while the rest still covers `seconds` (6.2.2), each one
        listed for about that long (`seconds` less a target duration), so a burst of backlog does not slide
        out before a polling player had the chance to see it. With a pathway behind the others (`hold`: the
        last number it lists), the window measured is its version's (every pathway's is a window long), and
        nothing it does not list yet leaves."""
        min_listed = seconds - target_duration
        duration = self.duration
        if hold is not None:
            for e in reversed(self._entries):
                if e.sequence <= hold:
                    break
                duration -= e.segment.duration
        leaving, last = 0, len(self._entries) - 1
        for first in self._entries:
            if (leaving >= last or (hold is not None and first.sequence >= hold)
                    or duration - first.segment.duration < seconds or now - first.listed_at < min_listed):
                break
            duration -= first.segment.duration
            leaving += 1
        return leaving

    def records(self) -> Tail:
        """The entries' records as they are now (ids count the entries appended to this window)."""
        return self._records.tail()

    def upto(self, count: int) -> Upto:
        """Its first `count` entries, as a version that lists fewer than the window (a pathway behind
        the others: playlist/views.py)."""
        return Upto(self, count)


class Upto:
    """The first `count` entries of a window, read as a window is (Entries). Reading from the end skips
    the entries past it: a pathway's lag, a few segments (an outage's backlog at most)."""

    __slots__ = ("_window", "_count", "_mapped")

    def __init__(self, window: Window, count: int) -> None:
        self._window = window
        self._count = max(0, min(count, len(window)))
        self._mapped: int | None = None

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Entry]:
        return islice(self._window, self._count)

    def __reversed__(self) -> Iterator[Entry]:
        return islice(reversed(self._window), len(self._window) - self._count, None)

    @property
    def first(self) -> Entry | None:
        return self._window.first if self._count else None

    @property
    def mapped(self) -> int:
        if self._mapped is None:
            past = sum(bool(e.segment.init_uri) for e in islice(reversed(self._window),
                                                                len(self._window) - self._count))
            self._mapped = self._window.mapped - past
        return self._mapped

    @property
    def duration(self) -> float:
        past = sum(e.segment.duration for e in islice(reversed(self._window), len(self._window) - self._count))
        return self._window.duration - past if self._count else 0.0

    def newest(self, count: int) -> list[Entry]:
        skip = len(self._window) - self._count
        return list(islice(reversed(self._window), skip, skip + count))[::-1]
