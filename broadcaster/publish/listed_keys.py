"""What a playlist lists, by key: `KeyIndex` for the window now (rebuilt once per change), `VmListed` for
what the VM's pathway listed a while after it left the window (a player may still ask for it: 6.2.2).
"""

from __future__ import annotations

from collections import OrderedDict

from ..playlist.entry import Entry
from ..playlist.pathway import init_key
from ..playlist.window import Window

# By key: the number (an init section's: its first segment's), the first bucket's URI, the segment's key
# (None: an init section first listed with a segment that has none).
At = tuple[int, str, str | None]

SLACK = 16  # keys the VM's record keeps beyond twice the window's entries


def _add(by_key: dict[str, At], e: Entry) -> None:
    """`e`'s segment (not a gap) by its key, and its init section, unless an earlier entry gave it."""
    seg = e.segment
    if seg.key and not seg.gap:
        by_key[seg.key] = (e.sequence, seg.uri, seg.key)
    init = init_key(seg)
    if init is not None and seg.init_uri is not None and init not in by_key:
        by_key[init] = (e.sequence, seg.init_uri, seg.key)


class KeyIndex:
    """The segments and init sections a window lists, by key (no gap: nothing to answer there)."""

    def __init__(self) -> None:
        self._changes: int | None = None
        self._by_key: dict[str, At] = {}

    def at(self, window: Window, changes: int, key: str) -> At | None:
        """`key` in `window` as of its `changes` mark."""
        if changes != self._changes:
            by_key: dict[str, At] = {}
            for e in window:
                _add(by_key, e)
            self._by_key, self._changes = by_key, changes
        return self._by_key.get(key)


class VmListed:
    """What the VM's pathway listed, by key, the oldest dropped past twice the window's entries."""

    def __init__(self) -> None:
        self._listed: OrderedDict[str, At] = OrderedDict()

    def add(self, e: Entry, window_entries: int) -> None:
        """The VM's pathway lists `e` (with its init section)."""
        if not e.segment.key or e.segment.gap:
            return
        _add(self._listed, e)
        most = 2 * window_entries + SLACK
        while len(self._listed) > most:
            self._listed.popitem(last=False)

    def get(self, key: str) -> At | None:
        return self._listed.get(key)

    def clear(self) -> None:
        self._listed.clear()
