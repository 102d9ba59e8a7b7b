"""Entry: one listed segment with its playlist lines rendered once (a version costs a join, not a
formatting), and the record the state file keeps."""

from __future__ import annotations

import json
from typing import Protocol

from . import hls
from .segments import ListedSegment

_encode = json.JSONEncoder(separators=(",", ":")).encode  # made once: json.dumps makes one per call


class Entry:
    """A listed segment with its lines rendered once; its hash line shown only near the live edge."""

    __slots__ = ("sequence", "segment", "discontinuity", "program_date_time", "listed_at", "text", "split",
                 "maps", "saved", "others")

    def __init__(self, sequence: int, segment: ListedSegment, discontinuity: bool, program_date_time: float,
                 listed_at: float, previous: Entry | None) -> None:
        self.sequence = sequence
        self.segment = segment
        self.discontinuity = discontinuity
        self.program_date_time = program_date_time
        self.listed_at = listed_at
        init = segment.init_uri
        # 4.4.4.5: EXT-X-MAP before the first segment it applies to (a version's first gets it at render).
        self.maps = bool(init) and (previous is None or init != previous.segment.init_uri or discontinuity)
        # Without its hash; `split`: where its hash line goes, before EXTINF.
        self.text, self.split = self._lines(segment.uri, init if self.maps else None, segment.gap)
        self.others: dict[str, tuple[str, int]] | None = None  # its text on other pathways (text_as)
        # Its record in the state file (publish/playlist_memory.py): a ninth value, its hash, when it has
        # one (older files have eight); a gap entry has a tenth, true (its ninth then null).
        record = [sequence, segment.uri, segment.duration, program_date_time, discontinuity, init, segment.key,
                  round(listed_at, 3)]
        if segment.sha256 or segment.gap:
            record.append(hls.encode_segment_hash(segment.sha256) if segment.sha256 else None)
        if segment.gap:
            record.append(True)
        self.saved = _encode(record)

    def _lines(self, uri: str, map_uri: str | None, gap: bool) -> tuple[str, int]:
        head = "".join((
            "#EXT-X-DISCONTINUITY\n" if self.discontinuity else "",
            f'#EXT-X-MAP:URI="{map_uri}"\n' if map_uri else "",
            f"#EXT-X-PROGRAM-DATE-TIME:{hls.format_program_date_time(self.program_date_time)}\n",
            f"{hls.GAP_TAG}\n" if gap else "",
        ))
        return f"{head}#EXTINF:{self.segment.duration:.3f},\n{uri}\n", len(head)

    def text_as(self, tag: str, uri: str, map_uri: str | None, gap: bool) -> tuple[str, int]:
        """Its text and hash split with another pathway's URIs, made once per `tag`."""
        others = self.others
        if others is None:
            others = self.others = {}
        made = others.get(tag)
        if made is None:
            made = others[tag] = self._lines(uri, map_uri, gap or self.segment.gap)
        return made

    def shown_as(self, text: str, split: int, hashed_from: int) -> str:
        """`text` (its hash line at `split`) with its hash when it is past `hashed_from`."""
        if self.segment.sha256 is None or self.sequence < hashed_from:
            return text
        return text[:split] + hls.segment_hash_line(self.segment.sha256) + text[split:]


class Texts(Protocol):
    """How one pathway writes its entries, and the EXT-X-MAP before a version's first one (4.4.4.5)."""

    def text(self, e: Entry) -> str: ...
    def shown(self, e: Entry, hashed_from: int) -> str: ...
    def first_map(self, e: Entry) -> str | None: ...


class ListedTexts:
    """The entries as they were listed: the first bucket's URIs (and every playlist without pathways)."""

    def text(self, e: Entry) -> str:
        return e.text

    def shown(self, e: Entry, hashed_from: int) -> str:
        return e.shown_as(e.text, e.split, hashed_from)

    def first_map(self, e: Entry) -> str | None:
        return e.segment.init_uri if not e.maps else None


LISTED_TEXTS = ListedTexts()


def dated(segment: ListedSegment, previous: Entry | None, discontinuity: bool, wall: float) -> float:
    """A segment's PROGRAM-DATE-TIME: its own, else continuing the one before, else its end at `wall`."""
    if segment.program_date_time is not None:
        return segment.program_date_time
    if previous is not None and not discontinuity:
        return previous.program_date_time + previous.segment.duration
    return wall - segment.duration


def hashed_from(next_sequence: int, target_duration: int) -> int:
    """The first sequence number whose hash is shown: the newest hls.hashed_segments ones' (H1)."""
    return next_sequence - hls.hashed_segments(target_duration)
