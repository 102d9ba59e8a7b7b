"""Long lists saved by what is new in them: a Log of JSON texts, and the Tail a save reads of it.

A window of hours is saved after every segment (state/journal.py writes only the items added since
its last line), so a save must not copy or encode the whole list, and what it saves must be the list as
it was when the version holding it was pushed, however much later the save reads it. A Tail is that
value by construction: the list a Log keeps its items in is only ever appended to. Dropping items at
the front moves `first`; once more than half of the list is dropped, the items still in it move to a
new list, and the old one is left as it was to every Tail that holds it.

Shared by every stage (the playlist's entries, the publisher's seen names, the cleaner's keys) and
importing nothing of the service's.
"""

from __future__ import annotations

# Items dropped before the list is copied: below this a compaction costs more than it frees.
COMPACT_AT = 64


class Tail:
    """Items `first` .. `end - 1` of a Log, as they were when it was taken: a value, whatever the Log
    does afterwards. `since(n)` gives the items from id n (at least `first`) to the end."""

    __slots__ = ("first", "end", "_items", "_offset")

    def __init__(self, first: int, end: int, items: list[str], offset: int) -> None:
        self.first, self.end, self._items, self._offset = first, end, items, offset

    def since(self, n: int) -> list[str]:
        return self._items[max(n, self.first) - self._offset:self.end - self._offset]

    def text(self) -> str:
        """The items as one JSON array."""
        return "[" + ",".join(self.since(self.first)) + "]"


class Log:
    """JSON texts with consecutive ids, added at the end and dropped at the front."""

    __slots__ = ("_items", "_offset", "first")

    def __init__(self, first: int = 0) -> None:
        self._items: list[str] = []  # only appended to; replaced, never changed, when compacted
        self._offset = first  # the id of _items[0]
        self.first = first  # the id of the oldest item kept

    @property
    def end(self) -> int:
        """The id the next item gets."""
        return self._offset + len(self._items)

    def __len__(self) -> int:
        return self.end - self.first

    def add(self, text: str) -> None:
        self._items.append(text)

    def drop_to(self, first: int) -> None:
        """Drop the items below id `first` (at most every one)."""
        self.first = max(self.first, min(first, self.end))
        dropped = self.first - self._offset
        if dropped >= COMPACT_AT and dropped * 2 > len(self._items):
            self._items = self._items[dropped:]  # a new list: a Tail taken before keeps the old one
            self._offset = self.first

    def tail(self, count: int | None = None) -> Tail:
        """The last `count` items (None: all kept), as they are now."""
        first = self.first if count is None else max(self.first, self.end - count)
        return Tail(first, self.end, self._items, self._offset)
