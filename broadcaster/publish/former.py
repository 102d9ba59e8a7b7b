"""Former: the playlist before a new target, which the pathways behind go on listing.

After a retarget, a pathway that had not listed everything any pathway showed goes on listing the former
playlist, frozen as it was, up to the last number shown anywhere, and only then the new one: no segment
shown on one pathway is missing from another. What leaves the new playlist meanwhile is held here until
no pathway lists the former. pathway_views.PathwayViews holds one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from ..playlist.entry import Entry
from ..playlist.rendered import Rendered
from ..playlist.segments import Removed
from ..playlist.views import Source, View
from ..playlist.window import Window

log = logging.getLogger(__name__)


class Frozen(Source, Protocol):
    """The former playlist (a frozen ManifestGenerator): read, and told a segment is nowhere."""

    def unavailable(self, key: str) -> int | None: ...


def after(window: Window, through: int) -> Iterator[Entry]:
    """The entries numbered above `through`, in order (read from the end: a pathway's lag)."""
    newer: list[Entry] = []
    for e in reversed(window):
        if e.sequence <= through:
            break
        newer.append(e)
    return reversed(newer)


class Former:
    def __init__(self, playlist: Frozen, views: dict[str, View], through: int) -> None:
        """`views`: the pathways that list `playlist` (each its view as it was), up to `through` (the last
        number of it shown on any pathway: how far each pathway on it lists it)."""
        self.playlist = playlist
        self.views = views
        self.through = through
        self._left: list[Removed] = []  # what left the new playlist meanwhile

    def done(self, pathway: str) -> bool:
        """`pathway` listed it as far as it was shown (or does not list it)."""
        view = self.views.get(pathway)
        return view is None or view.through >= self.through

    def render(self, pathway: str, edge: bool) -> Rendered | None:
        view = self.views.get(pathway)
        return view.render(self.playlist, edge) if view is not None else None

    def keys(self) -> Iterator[tuple[str, bool]]:
        """(key, listed as a gap) of each segment it lists."""
        return ((e.segment.key, e.segment.gap) for e in self.playlist.window if e.segment.key)

    def hold_back(self, removed: list[Removed]) -> None:
        """Left the new playlist: the former may list it."""
        self._left += removed

    def leave(self, pathway: str) -> bool:
        """`pathway` lists the new playlist from now on; True when no pathway lists this one any more."""
        self.views.pop(pathway, None)
        return not self.views

    def drop(self) -> list[Removed]:
        """Given up (every pathway left it, or another restart): what it held back, on to the cleaner. A
        pathway that had not listed all of it as far as it was shown is said."""
        for pid, view in self.views.items():
            unseen = [e.segment.key or "" for e in after(self.playlist.window, view.through)
                      if e.sequence <= self.through]
            if unseen:
                log.warning("%s pathway: %s shown on another pathway only: a new target came before this "
                            "one had listed them", pid, ", ".join(k.rpartition("/")[2] for k in unseen))
        self.views.clear()
        left, self._left = self._left, []
        return left
