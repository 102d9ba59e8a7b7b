"""Entry: one listed segment with its playlist lines rendered once, and the record the state file keeps.

A long window (REWIND_SECONDS) is rendered and saved after every new segment, so each entry costs a
join, not a formatting, per version. Its hash line (P2P on) is shown only near the live edge
(hashed_from, hls.hashed_segments).
"""

from __future__ import annotations

import json

from . import hls
from .segments import ListedSegment

# json.dumps with separators builds an encoder per call: one, made once (a restart encodes every entry).
_encode = json.JSONEncoder(separators=(",", ":")).encode


class Entry:
    """A listed segment with its lines rendered once; its hash line, when it has a hash, is shown only
    while it is near the live edge (shown)."""

    __slots__ = ("sequence", "segment", "discontinuity", "program_date_time", "listed_at", "text", "split",
                 "maps", "saved")

    def __init__(self, sequence: int, segment: ListedSegment, discontinuity: bool, program_date_time: float,
                 listed_at: float, previous: Entry | None) -> None:
        self.sequence = sequence
        self.segment = segment
        self.discontinuity = discontinuity
        self.program_date_time = program_date_time
        self.listed_at = listed_at
        init = segment.init_uri
        # 4.4.4.5: EXT-X-MAP before the first segment it applies to; a playlist's (or a delta's) first
        # segment gets it at render time when its predecessor made it unneeded here.
        self.maps = bool(init) and (previous is None or init != previous.segment.init_uri or discontinuity)
        head = "".join((
            "#EXT-X-DISCONTINUITY\n" if discontinuity else "",
            f'#EXT-X-MAP:URI="{init}"\n' if self.maps else "",
            f"#EXT-X-PROGRAM-DATE-TIME:{hls.format_program_date_time(program_date_time)}\n",
            f"{hls.GAP_TAG}\n" if segment.gap else "",
        ))
        self.text = f"{head}#EXTINF:{segment.duration:.3f},\n{segment.uri}\n"  # without its hash
        self.split = len(head)  # where its hash line goes: before EXTINF
        # Its record in the state file (read back by publish/playlist_memory.py), with the time it was
        # listed on the generator's clock (the save says what that clock read): the same text in every
        # save. Its hash, when it has one, is a ninth value (files from before it have eight: those
        # segments never come from peers); a gap entry has a tenth, true (its ninth then null).
        record = [sequence, segment.uri, segment.duration, program_date_time, discontinuity, init, segment.key,
                  round(listed_at, 3)]
        if segment.sha256 or segment.gap:
            record.append(hls.encode_segment_hash(segment.sha256) if segment.sha256 else None)
        if segment.gap:
            record.append(True)
        self.saved = _encode(record)

    def shown(self, hashed_from: int) -> str:
        """Its text in a version whose segments from number `hashed_from` on show their hash."""
        if self.segment.sha256 is None or self.sequence < hashed_from:
            return self.text
        return self.text[:self.split] + hls.segment_hash_line(self.segment.sha256) + self.text[self.split:]


def hashed_from(next_sequence: int, target_duration: int) -> int:
    """The first sequence number whose hash is shown: the newest hls.hashed_segments ones' (H1)."""
    return next_sequence - hls.hashed_segments(target_duration)
