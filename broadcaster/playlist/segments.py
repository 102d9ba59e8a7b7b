"""What goes into a playlist and what comes out of it: a segment already in the bucket, listed
(ListedSegment), and one that slid out of every window but must stay downloadable a while (Removed)."""

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
    # SHA-256 of the bytes in the bucket, listed for viewers' peers to be checked against (hls.py's
    # SEGMENT_HASH_TAG); only with P2P on, so a playlist without P2P says nothing of it.
    sha256: bytes | None = None
    # Not in the bucket and never to be loaded: listed with EXT-X-GAP where the other variants list this
    # moment (hls.GAP_TAG), so the numbers stay the same in every variant. Its URI is where it would be.
    gap: bool = False


@dataclass(frozen=True, slots=True)
class Removed:
    """A segment that slid out of the window; it must stay downloadable for `keep` more seconds."""

    segment: ListedSegment
    removed_at: float
    keep: float  # its duration plus the longest playlist that listed it (6.2.2)
