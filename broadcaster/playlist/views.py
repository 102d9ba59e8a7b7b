"""One playlist as each pathway lists it (content steering): the same entries, numbers, dates and
discontinuities on every pathway (6.2.4), each at that pathway's URIs, up to where it has them (`through`).
An entry keeps the URI a pathway first listed it at (6.2.2): `modes` says where, when not its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from .entry import Entry
from .pathway import LISTED, Pathway, SegmentUris
from .renderer import Listing, Renderer
from .rendered import Pending, Rendered, Version

OWN = ""  # listed at the pathway's own URI
GAP = "-"  # listed as EXT-X-GAP there (4.4.4.7): it never landed there (given up)
# Any other mode is a pathway ID: the entry is listed at that pathway's URI.


def _uris_of(mode: str) -> str:
    """The mode whose URIs an entry is written with: a gap is at the pathway's own URI."""
    return OWN if mode == GAP else mode


class PathwayTexts:
    """How `pathway` writes each entry (entry.Texts): its URIs, or another pathway's where `modes` says."""

    __slots__ = ("_id", "_uris", "_others", "_modes", "_listed", "_own")

    def __init__(self, pathway: Pathway, others: Mapping[str, SegmentUris], modes: Mapping[int, str]) -> None:
        self._id = pathway.id
        self._uris = pathway.uris
        self._others = others
        self._modes = modes
        self._listed = pathway.uris is LISTED
        self._own = (self._tag(OWN, False), self._tag(OWN, True))  # by `maps`: the tags of most entries

    def _maps(self, e: Entry, mode: str) -> bool:
        if not e.segment.init_uri:
            return False
        return e.maps or _uris_of(self._mode_at(e.sequence - 1)) != _uris_of(mode)

    def _mode_at(self, sequence: int) -> str:
        return self._modes.get(sequence, OWN) if self._modes else OWN

    def _tag(self, mode: str, maps: bool) -> str:
        return f"{self._id}|{mode}|{int(maps)}"

    def _made(self, e: Entry) -> tuple[str, int]:
        if not self._modes:  # every entry at its own URI: EXT-X-MAP where the listed version has it
            if self._listed:
                return e.text, e.split
            made = e.others.get(self._own[e.maps]) if e.others is not None else None
            if made is not None:  # a version costs a lookup per entry, not its URIs again
                return made
            mode, maps = OWN, e.maps
        else:
            mode = self._mode_at(e.sequence)
            maps = self._maps(e, mode)
            if self._listed and mode == OWN and maps == e.maps:
                return e.text, e.split
        uris = self._uris if _uris_of(mode) == OWN else self._others[mode]
        segment = e.segment
        return e.text_as(self._tag(mode, maps), uris.segment(segment),
                         uris.init(segment) if maps else None, mode == GAP)

    def text(self, e: Entry) -> str:
        return self._made(e)[0]

    def shown(self, e: Entry, hashed_from: int) -> str:
        text, split = self._made(e)
        return e.shown_as(text, split, hashed_from)

    def first_map(self, e: Entry) -> str | None:
        mode = self._mode_at(e.sequence)
        if not e.segment.init_uri or self._maps(e, mode):
            return None  # none, or its own text carries it
        uris = self._uris if _uris_of(mode) == OWN else self._others[mode]
        return uris.init(e.segment)


class Source(Listing, Protocol):
    """What a view reads of its playlist (manifest.ManifestGenerator)."""

    @property
    def changes(self) -> int: ...
    @property
    def replacements(self) -> int: ...


class Snapshot:
    """A Source as it was when a version was pushed (up to `through`): a frozen view, nothing copied."""

    __slots__ = ("window", "target_duration", "media_sequence", "discontinuity_sequence", "next_sequence",
                 "ended", "independent_segments", "can_block_reload", "can_skip", "start_at_edge", "changes",
                 "replacements")

    def __init__(self, p: Source, through: int | None = None) -> None:
        if through is None:
            self.window, self.next_sequence, self.ended = p.window.frozen(), p.next_sequence, p.ended
        else:
            self.window = p.window.frozen(through - p.media_sequence + 1)
            self.next_sequence, self.ended = through + 1, p.ended and through == p.next_sequence - 1
        self.target_duration = p.target_duration
        self.media_sequence = p.media_sequence
        self.discontinuity_sequence = p.discontinuity_sequence
        self.independent_segments = p.independent_segments
        self.can_block_reload = p.can_block_reload
        self.can_skip = p.can_skip
        self.start_at_edge = p.start_at_edge
        self.changes = p.changes
        self.replacements = p.replacements


class View:
    """One pathway's versions of one playlist: the entries up to `through` (-1: none yet) at `modes`."""

    __slots__ = ("pathway", "through", "modes", "_renderer", "_made", "_replacements", "_pending")

    def __init__(self, pathway: Pathway, others: Mapping[str, SegmentUris]) -> None:
        self.pathway = pathway
        self.through = -1
        self.modes: dict[int, str] = {}
        self._renderer = Renderer(PathwayTexts(pathway, others, self.modes))
        self._made: dict[bool, tuple[int, int, Rendered]] = {}  # by `edge`: (changes, through, rendered)
        self._replacements = -1
        self._pending: tuple[int, int, bool, Pending] | None = None  # the last version(): unchanged, the same

    def forget(self) -> None:
        """A new playlist (a restart): nothing listed here yet."""
        self.through = -1
        self.modes.clear()
        self._made.clear()
        self._pending = None

    def drop_modes_before(self, sequence: int) -> None:
        """Entries below `sequence` left the playlist: their modes with them."""
        if self.modes and min(self.modes) < sequence:
            for n in [n for n in self.modes if n < sequence]:
                del self.modes[n]

    def version(self, p: Source, frozen: Callable[[], Snapshot], edge: bool = False) -> Version | None:
        """Its version of `p` as far as it lists now (None: nothing): a Pending rendered when first asked from
        `frozen()` (one Snapshot for every pathway of a push), or rendered now when `modes` are in play (they
        change as the window slides)."""
        through = self.through
        if not self._shows(p, through):
            return None
        if self.modes:
            return self._rendering(p, edge, through)
        pending = self._pending
        if pending is not None and pending[:3] == (p.changes, through, edge):
            return pending[3]  # nothing new: the version shown already (a push shows no new one)
        snapshot = frozen()
        made = Pending(lambda: self._rendering(snapshot, edge, through), last_sequence=through,
                       ended=p.ended and through == p.next_sequence - 1)
        self._pending = (p.changes, through, edge, made)
        return made

    @staticmethod
    def _shows(p: Source, through: int) -> bool:
        """Entries up to `through` to show, or an end with nothing to list (a restart left it none)."""
        count = through - p.media_sequence + 1
        if p.ended and not len(p.window) and count == 0:
            return True
        return count > 0 and bool(len(p.window))

    def render(self, p: Source, edge: bool = False) -> Rendered | None:
        """Its version of `p` as far as it lists now (`edge`: for a static host); None: nothing listed."""
        return self._rendering(p, edge, self.through) if self._shows(p, self.through) else None

    def _rendering(self, p: Source, edge: bool, through: int) -> Rendered:
        made = self._made.get(edge)
        key = (p.changes, through)
        if made is not None and made[:2] == key:
            return made[2]
        if p.replacements != self._replacements:
            self._replacements = p.replacements
            self._renderer.replaced()
        self._renderer.changed()
        listing = Snapshot(p, through)
        rendered = self._renderer.render_edge(listing) if edge else self._renderer.render(listing)
        self._made[edge] = (*key, rendered)
        return rendered
