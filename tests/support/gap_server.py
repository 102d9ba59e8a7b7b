"""The gap players' rig (tests/test_gap_players.py): the three live playlists of a stream with a lost
segment in manifest.py's format (A all segments; B LOST left out, `#EXT-X-DISCONTINUITY` before the next;
C LOST listed after `#EXT-X-GAP`, a 404), on each client's clock: FIRST_LISTED segments at once, one more a
second, a window of WINDOW, and ENDLIST with the last."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from tests.support.scripted_stream import Stream, playlist

LOST = 5  # the segment Owncast deleted before it was uploaded
FIRST_LISTED = 3  # listed at a client's first request; then one more per second
WINDOW = 6  # segments in the sliding playlist (>= 3 target durations)
EPOCH = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
SCENARIOS = ("A", "B", "C")


def segment_name(i: int) -> str:
    return f"seg{i:03d}.ts"


# -- playlists -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    source: int  # index of the segment in the source stream
    duration: float
    discontinuity: bool = False
    gap: bool = False


def entries(scenario: str, durations: list[float]) -> list[Entry]:
    out: list[Entry] = []
    for i, d in enumerate(durations):
        if i == LOST and scenario == "B":
            continue
        disc, gap = scenario == "B" and i == LOST + 1, scenario == "C" and i == LOST
        out.append(Entry(i, d, discontinuity=disc, gap=gap))
    return out


def render(scenario: str, durations: list[float], published: int) -> str:
    """The playlist once source segments [0, published) exist: manifest.py's format, sliding."""
    starts = [sum(durations[:i]) for i in range(len(durations))]
    listed = [e for e in entries(scenario, durations) if e.source < published]
    first = max(0, len(listed) - WINDOW)
    removed, window = listed[:first], listed[first:]
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{8 if scenario == 'C' else 3}", "#EXT-X-TARGETDURATION:1",
             f"#EXT-X-MEDIA-SEQUENCE:{first}",
             f"#EXT-X-DISCONTINUITY-SEQUENCE:{sum(e.discontinuity for e in removed)}",
             "#EXT-X-INDEPENDENT-SEGMENTS"]
    for e in window:
        if e.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        pdt = datetime.fromtimestamp(EPOCH + starts[e.source], tz=UTC).isoformat(timespec="milliseconds")
        lines.append("#EXT-X-PROGRAM-DATE-TIME:" + pdt.replace("+00:00", "Z"))
        lines.append(f"#EXTINF:{e.duration:.3f},")
        if e.gap:
            lines.append("#EXT-X-GAP")
        lines.append(segment_name(e.source))
    if published >= len(durations):
        lines.append("#EXT-X-ENDLIST")
    lines.append("")
    return "\n".join(lines)


# -- the stream -----------------------------------------------------------------------------------


class GapStream(Stream):
    """One client's playlist of `scenario` (variant 0 alone) and its segments, LOST answering 404 but in A."""

    def __init__(self, scenario: str, segments: dict[str, bytes], durations: list[float]) -> None:
        super().__init__()
        self.scenario = scenario
        self.segments = segments
        self.durations = durations

    async def media(self, request: web.Request, variant: int) -> web.Response:
        published = min(len(self.durations), FIRST_LISTED + int(self.clock()))
        return playlist(render(self.scenario, self.durations, published))

    def segment(self, variant: int, name: str) -> bytes | None:
        return None if self.scenario != "A" and name == segment_name(LOST) else self.segments.get(name)
