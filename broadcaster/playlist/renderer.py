"""Renderer: a playlist's versions (the origin's, its delta update, and the bucket's), rendered once per
change and handed out until the next."""

from __future__ import annotations

from typing import Protocol

from . import hls
from .chunks import Frozen, Parts
from .entry import LISTED_TEXTS, Entry, Texts, hashed_from
from .rendered import Rendered
from .window import Window


class Listing(Protocol):
    """What a playlist lists and says, read-only (manifest.ManifestGenerator)."""

    @property
    def window(self) -> Window: ...
    @property
    def target_duration(self) -> int: ...
    @property
    def media_sequence(self) -> int: ...
    @property
    def discontinuity_sequence(self) -> int: ...
    @property
    def next_sequence(self) -> int: ...
    @property
    def ended(self) -> bool: ...
    @property
    def independent_segments(self) -> bool: ...
    @property
    def can_block_reload(self) -> bool: ...
    @property
    def can_skip(self) -> bool: ...
    @property
    def start_at_edge(self) -> bool: ...


class Renderer:
    """`texts`: how the pathway whose versions these are writes each entry (the listed URIs by default)."""

    __slots__ = ("_frozen", "_rendered", "_edge", "_rendered_sequence", "_fewest", "texts")

    def __init__(self, texts: Texts = LISTED_TEXTS) -> None:
        self.texts = texts
        self._frozen = Frozen(texts)
        self._rendered: Rendered | None = None
        self._edge: Rendered | None = None
        # The media sequence of the last version rendered, and the fewest segments a version under it listed.
        self._rendered_sequence: int | None = None
        self._fewest = 0

    def changed(self) -> None:
        self._rendered = self._edge = None

    def replaced(self) -> None:
        """The entries were replaced: nothing frozen applies."""
        self._frozen.clear()

    def render(self, p: Listing) -> Rendered:
        """`p`'s origin playlist (with SERVER-CONTROL when it can block), and its delta update if offered."""
        if self._rendered is None:
            last, ended = p.next_sequence - 1, p.ended
            count = len(p.window)
            if p.media_sequence != self._rendered_sequence:
                self._rendered_sequence, self._fewest = p.media_sequence, count
            skippable = p.can_skip and not ended
            skipped = _skippable(p.window, hls.skip_until(p.target_duration)) if skippable else 0
            delta = None
            if skipped:
                delta = Rendered(self.text(p, p.can_block_reload, skipped).encode(), last_sequence=last, ended=ended)
            # A delta listing fewer than any earlier version under its media sequence cannot look unchanged
            # to video.js (Rendered.answer).
            self._rendered = Rendered(self._parts(p, p.can_block_reload), last_sequence=last,
                                      ended=ended, delta=delta, media_sequence=p.media_sequence,
                                      delta_count=count - skipped, blind_delta=count - skipped < self._fewest)
        return self._rendered

    def render_edge(self, p: Listing) -> Rendered:
        """The same version for a static host (the bucket): it cannot block or answer _HLS_skip (6.2.5.2)."""
        if not p.can_block_reload:
            return self.render(p)
        if self._edge is None:
            self._edge = Rendered(self._parts(p, False), last_sequence=p.next_sequence - 1, ended=p.ended)
        return self._edge

    def _header(self, p: Listing, server_control: bool, skipped: int, first: Entry | None) -> str:
        has_map = p.window.mapped > 0
        version = hls.DELTA_PLAYLIST_VERSION if skipped else hls.playlist_version(has_map=has_map)
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{version}",
            f"#EXT-X-TARGETDURATION:{p.target_duration}",
            *([hls.server_control(p.target_duration, can_skip=p.can_skip)] if server_control else []),
            *([hls.start_at_edge(p.target_duration)] if p.start_at_edge else []),
            f"#EXT-X-MEDIA-SEQUENCE:{p.media_sequence}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{p.discontinuity_sequence}",
        ]
        if p.independent_segments:
            lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        if skipped:
            # 4.4.5.2: replaces the skipped segments' URIs and every tag that applied to them.
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
        lines.append("")
        head = "\n".join(lines)
        map_uri = self.texts.first_map(first) if first is not None else None
        if map_uri:
            head += f'#EXT-X-MAP:URI="{map_uri}"\n'  # 4.4.4.5: the first needs it
        return head

    def text(self, p: Listing, server_control: bool, skipped: int = 0) -> str:
        """The whole text (or, `skipped`, a delta update's). The full playlist is rendered in _parts."""
        window = p.window
        entries = window.newest(len(window) - skipped) if skipped else list(window)
        edge = hashed_from(p.next_sequence, p.target_duration)
        shown = self.texts.shown
        head = self._header(p, server_control, skipped, entries[0] if entries else None)
        end = "#EXT-X-ENDLIST\n" if p.ended else ""
        return "".join((head, *(shown(e, edge) for e in entries), end))

    def _parts(self, p: Listing, server_control: bool) -> Parts:
        head = self._header(p, server_control, 0, p.window.first)
        return self._frozen.parts(p.window, p.media_sequence, p.next_sequence, head, p.ended,
                                  p.target_duration)


def _skippable(entries: Window, keep: float) -> int:
    """How many of the oldest segments a delta update skips, keeping `keep` seconds of the end (6.2.5.1)."""
    tail = 0.0
    for kept, e in enumerate(reversed(entries), 1):  # from the end: a long window costs nothing
        tail += e.segment.duration
        if tail >= keep:
            return len(entries) - kept
    return 0
