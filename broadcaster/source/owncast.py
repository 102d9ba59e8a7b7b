"""Parsing what Owncast writes to its HLS folder (docs/owncast.md). Written in place, a playlist may be
read half-written: one that does not parse completely is rejected (read again on the next event), never
taken as "the stream ended". Only plain file names inside the variant's folder are accepted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import m3u8

MASTER_PLAYLIST = "stream.m3u8"
VARIANT_PLAYLIST = "stream.m3u8"
# Entries taken from one media playlist, the newest: Owncast lists at most 25; room for any hls_list_size.
MAX_PLAYLIST_ENTRIES = 500

# A plain file name: no folders, no "..", no URL escapes, queries or schemes.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# Owncast's shortid alphabet includes '-' and '_': the id is everything up to the last "-<n>".
_STREAM_NAME = re.compile(r"stream-(?P<id>[A-Za-z0-9_-]+)-[0-9]+\.[a-z0-9]+")
_VARIANT_URI = re.compile(r"(?P<index>[0-9]{1,3})/[A-Za-z0-9_.-]+\.m3u8")


class PlaylistError(ValueError):
    """The playlist is incomplete (still being written) or not a playlist at all."""


@dataclass(frozen=True, slots=True)
class SourceSegment:
    name: str
    duration: float
    program_date_time: float | None  # epoch seconds
    discontinuity: bool  # Owncast put EXT-X-DISCONTINUITY before it
    init_name: str | None  # EXT-X-MAP of fMP4 segments
    position: int = 0  # its place in Owncast's list, counting entries we skipped: number = MSN + position

    @property
    def is_offline_clip(self) -> bool:
        """Owncast's "stream is offline" clip and its idle transcoder's segments."""
        return self.name.startswith("offline") or stream_id(self.name) == "offline"


@dataclass(frozen=True, slots=True)
class SourcePlaylist:
    target_duration: int
    media_sequence: int
    segments: tuple[SourceSegment, ...]
    ended: bool
    independent_segments: bool
    rejected: tuple[tuple[str, str], ...] = field(default=())  # (name, why) of entries skipped
    skipped: int = 0  # older entries left out, beyond MAX_PLAYLIST_ENTRIES


@dataclass(frozen=True, slots=True)
class SourceVariant:
    index: int
    bandwidth: int
    average_bandwidth: int | None = None
    resolution: tuple[int, int] | None = None
    codecs: str | None = None
    frame_rate: float | None = None


def is_safe_name(name: str) -> bool:
    return bool(_SAFE_NAME.fullmatch(name)) and ".." not in name


def stream_id(name: str) -> str | None:
    """The transcoder run a segment belongs to: `stream-<shortid>-<n>.ts` -> shortid."""
    m = _STREAM_NAME.fullmatch(name)
    return m.group("id") if m else None


def _load(text: str) -> m3u8.M3U8:
    # ffmpeg ends every line with a newline: a file that does not is still being written.
    if not text.startswith("#EXTM3U") or not text.endswith("\n"):
        raise PlaylistError("incomplete playlist (no #EXTM3U header or no final newline)")
    try:
        return m3u8.loads(text)
    except Exception as err:  # the parser raises bare ValueErrors, IndexErrors...
        raise PlaylistError(f"unparsable playlist: {err}") from err


def parse_media_playlist(text: str) -> SourcePlaylist:
    playlist = _load(text)
    if playlist.is_variant:
        raise PlaylistError("expected a media playlist, found a multivariant playlist")
    if playlist.target_duration is None:
        raise PlaylistError("no #EXT-X-TARGETDURATION")
    segments: list[SourceSegment] = []
    rejected: list[tuple[str, str]] = []
    entries = playlist.segments
    skipped = max(0, len(entries) - MAX_PLAYLIST_ENTRIES)
    for position in range(skipped, len(entries)):  # positions still count the entries left out
        seg = entries[position]
        if not seg.uri or seg.duration is None:
            raise PlaylistError("segment without URI or #EXTINF")
        if not math.isfinite(seg.duration):
            # "inf"/"nan" parse as floats; no playlist rule can judge them (rounding them raises).
            raise PlaylistError(f"#EXTINF {seg.duration} of {seg.uri!r} is not a number of seconds")
        init = seg.init_section.uri if seg.init_section is not None else None
        bad = next((n for n in (seg.uri, init) if n is not None and not is_safe_name(n)), None)
        if bad is not None:
            rejected.append((bad, "not a plain file name in the variant folder"))
            continue
        pdt = seg.current_program_date_time
        date = pdt.timestamp() if pdt is not None else None
        segments.append(SourceSegment(seg.uri, float(seg.duration), date, bool(seg.discontinuity), init,
                                      position))
    if not playlist.segments and not playlist.is_endlist:
        # Owncast always lists a segment: this is a file cut after its header (its sequence is not 0).
        raise PlaylistError("incomplete playlist (no segment listed yet)")
    return SourcePlaylist(int(playlist.target_duration), int(playlist.media_sequence or 0), tuple(segments),
                          bool(playlist.is_endlist), bool(playlist.is_independent_segments), tuple(rejected),
                          skipped)


def parse_master_playlist(text: str) -> list[SourceVariant]:
    playlist = _load(text)
    variants: list[SourceVariant] = []
    for entry in playlist.playlists:
        m = _VARIANT_URI.fullmatch(entry.uri or "")
        info = entry.stream_info
        if m is None or info is None or not info.bandwidth:
            continue
        variants.append(SourceVariant(
            int(m.group("index")), int(info.bandwidth),
            average_bandwidth=int(info.average_bandwidth) if info.average_bandwidth else None,
            resolution=tuple(info.resolution) if info.resolution else None,
            codecs=info.codecs or None, frame_rate=float(info.frame_rate) if info.frame_rate else None))
    if not variants:
        raise PlaylistError("multivariant playlist lists no usable variant")
    return variants
