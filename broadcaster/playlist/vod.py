"""A whole stream kept as video on demand: a recording's or a clip's playlist, rendered once."""

from __future__ import annotations

from . import hls
from .segments import ListedSegment


def render_vod(segments: list[ListedSegment], target_duration: int, *, independent_segments: bool = True) -> bytes:
    """PLAYLIST-TYPE:VOD (4.4.3.5) and ENDLIST; each segment keeps its discontinuity, date and gap."""
    has_map = any(s.init_uri for s in segments)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{hls.playlist_version(has_map=has_map)}",
        f"#EXT-X-TARGETDURATION:{target_duration}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    if independent_segments:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    current_map: str | None = None
    for i, s in enumerate(segments):
        disc = s.discontinuity and i > 0
        if disc:
            lines.append("#EXT-X-DISCONTINUITY")
        if s.init_uri and (s.init_uri != current_map or disc):
            lines.append(f'#EXT-X-MAP:URI="{s.init_uri}"')
        current_map = s.init_uri
        if s.program_date_time is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{hls.format_program_date_time(s.program_date_time)}")
        if s.gap:
            lines.append(hls.GAP_TAG)
        lines.append(f"#EXTINF:{s.duration:.3f},")
        lines.append(s.uri)
    lines += ["#EXT-X-ENDLIST", ""]
    return "\n".join(lines).encode()
