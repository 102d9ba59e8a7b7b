"""DueNotes: what the cleaner saves, each key's due time noted when it changes, in that order.

A key's latest note is live until the key is deleted or noted again; the saved list starts at the
oldest live note and says null for a note that died behind it, so a save writes only what changed
(state/journal.py). `snapshot` gives a value: its lists are only appended to (a note's death is stamped
once, later than every snapshot taken before it), so it reads as it was taken, whenever a save reads it.
"""

from __future__ import annotations

import json

from ..tails import Tail

_ALIVE = 1 << 62  # a note's stamp until it dies: later than any snapshot's
_COMPACT_AT = 64  # notes dropped before the lists are copied (as tails.Log)


class _NotesTail(Tail):
    """Notes `first` .. `end - 1` as they were at death stamp `tick`: dead ones (stamped before) null."""

    __slots__ = ("_died", "_tick")

    def __init__(self, first: int, end: int, texts: list[str], died: list[int], offset: int,
                 tick: int) -> None:
        super().__init__(first, end, texts, offset)
        self._died, self._tick = died, tick

    def since(self, n: int) -> list[str]:
        start, stop = max(n, self.first) - self._offset, self.end - self._offset
        tick = self._tick
        return [text if died >= tick else "null"
                for text, died in zip(self._items[start:stop], self._died[start:stop])]


class DueNotes:
    __slots__ = ("_texts", "_died", "_offset", "_first", "_live", "_tick")

    def __init__(self) -> None:
        self._texts: list[str] = []  # each note's saved [key, time]; only appended to
        self._died: list[int] = []  # each note's death stamp (_ALIVE until it dies), set once
        self._offset = 0  # the id of _texts[0]
        self._first = 0  # the id of the oldest note saved
        self._live: dict[str, int] = {}  # key -> the id of its latest note
        self._tick = 0  # the next death stamp

    def note(self, key: str, due: float) -> None:
        """`key` may go at `due`: a new note, and the key's earlier one dies."""
        self._die(self._live.get(key))
        self._live[key] = self._offset + len(self._texts)
        self._texts.append(json.dumps([key, round(due, 3)], separators=(",", ":")))
        self._died.append(_ALIVE)

    def forget(self, key: str) -> None:
        """`key` was deleted: its note dies."""
        self._die(self._live.pop(key, None))

    def _die(self, note: int | None) -> None:
        if note is not None and note >= self._offset:
            self._died[note - self._offset] = self._tick
            self._tick += 1

    def snapshot(self) -> Tail:
        """Every live note from the oldest one on, dead ones between them null, as they are now."""
        end = self._offset + len(self._texts)
        while self._first < end and self._died[self._first - self._offset] != _ALIVE:
            self._first += 1
        if end - self._first > 2 * len(self._live) + 64:
            # Keys a clip keeps hold the front while newer notes die behind them: note the live ones
            # again, in order, and drop the rest (costs the live count, once per that many dead notes).
            live = sorted((n, key) for key, n in self._live.items())
            for n, key in live:
                self._live[key] = self._offset + len(self._texts)
                self._texts.append(self._texts[n - self._offset])
                self._died.append(_ALIVE)
            self._first = end
        dropped = self._first - self._offset
        if dropped >= _COMPACT_AT and dropped * 2 > len(self._texts):
            # New lists: a Tail taken before keeps the old ones, as they were.
            self._texts, self._died = self._texts[dropped:], self._died[dropped:]
            self._offset = self._first
        return _NotesTail(self._first, self._offset + len(self._texts), self._texts, self._died, self._offset,
                          self._tick)
