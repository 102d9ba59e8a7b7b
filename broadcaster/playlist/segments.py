"""What goes into a playlist (ListedSegment) and what comes out of it (Removed)."""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True, slots=True)
class ListedSegment:
    """A segment that is already in the bucket and may be listed."""

    uri: str
    duration: float
    program_date_time: float | None = None  # epoch seconds, from Owncast's playlist
    discontinuity: bool = False
    init_uri: str | None = None  # fMP4 init section (EXT-X-MAP)
    key: str | None = None  # its object key, so it can be deleted once it left every playlist
    sha256: bytes | None = None  # of the bytes in the bucket, for viewers' peers (P2P on only)
    gap: bool = False  # never to be loaded: listed with EXT-X-GAP (hls.GAP_TAG), its URI where it would be


@dataclass(frozen=True, slots=True)
class Removed:
    """A segment that slid out of the window; it must stay downloadable for `keep` more seconds."""

    segment: ListedSegment
    removed_at: float
    keep: float  # its duration plus the longest playlist that listed it (6.2.2)
