"""Long lists saved by what is new in them: a Log of JSON texts, and the Tail a save reads of it (a value:
a Log's list is only appended to, a compaction makes a new one)."""

from __future__ import annotations

COMPACT_AT = 64  # dropped before a copy: below it a compaction costs more than it frees


class Tail:
    """Items `first` .. `end - 1` of a Log, as they were when it was taken."""

    __slots__ = ("first", "end", "_items", "_offset")

    def __init__(self, first: int, end: int, items: list[str], offset: int) -> None:
        self.first, self.end, self._items, self._offset = first, end, items, offset

    def since(self, n: int) -> list[str]:
        return self._items[max(n, self.first) - self._offset:self.end - self._offset]

    def text(self) -> str:
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
        return self._offset + len(self._items)

    def __len__(self) -> int:
        return self.end - self.first

    def add(self, text: str) -> None:
        self._items.append(text)

    def drop_to(self, first: int) -> None:
        self.first = max(self.first, min(first, self.end))
        dropped = self.first - self._offset
        if dropped >= COMPACT_AT and dropped * 2 > len(self._items):
            self._items = self._items[dropped:]  # a new list: a Tail taken before keeps the old one
            self._offset = self.first

    def tail(self, count: int | None = None) -> Tail:
        """The last `count` items (None: all kept), as they are now."""
        first = self.first if count is None else max(self.first, self.end - count)
        return Tail(first, self.end, self._items, self._offset)
