"""What a media playlist lists, read by the tests' own few lines (not the service's parser, and not the
HLS checker's, which must share code with neither)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Listed:
    """One segment line and the tags that apply to it."""

    number: int  # its media sequence number
    uri: str
    discontinuity: int  # its discontinuity number: DISCONTINUITY-SEQUENCE plus the tags on and before it
    gap: bool  # listed with EXT-X-GAP
    duration: float  # its EXTINF (0 if none)
    date: str  # its EXT-X-PROGRAM-DATE-TIME, or the last one before it ("" if none)

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]


def listing(text: str) -> list[Listed]:
    """Every segment a media playlist lists, in order (an absent sequence tag is 0)."""
    number = discontinuity = 0
    gap, duration, date, out = False, 0.0, "", []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            number = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            discontinuity = int(line.split(":", 1)[1])
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity += 1
        elif line == "#EXT-X-GAP":
            gap = True
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = line.split(":", 1)[1]
        elif line and not line.startswith("#"):
            out.append(Listed(number, line, discontinuity, gap, duration, date))
            number, gap = number + 1, False
    return out
