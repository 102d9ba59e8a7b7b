"""A lost segment: `#EXT-X-DISCONTINUITY` or `#EXT-X-GAP`? Both real players (docs/hls-rules.md).

Real MPEG-TS segments (12 x 1 s) are served as a live sliding playlist (tests/support/gap_server.py) in
three versions: A all segments; B segment 5 left out, `#EXT-X-DISCONTINUITY` before 6 (the service's);
C segment 5 listed after `#EXT-X-GAP`, its URI a 404. Each is played by ffmpeg and by hls.js in
Chromium, six clients at once.

Asserted, so a new version of either player that behaves otherwise fails here: ffmpeg reads A whole and
B and C minus the lost second, exit 0; hls.js plays A and B in one piece without an error and never asks
for segment 5, and in C reports a non-fatal fragGap and seeks over the hole. So B is the better mark."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.browser import needs_chromium
from tests.support.gap_players import HlsJsRun, observe
from tests.support.gap_server import FIRST_LISTED, LOST, SCENARIOS, entries, render, segment_name
from tests.support.player_run import FfmpegRun
from tests.support.publish_scenario import FPS, encode, every
from tests.support.scripted_stream import Asked

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.xdist_group("gap_players"),  # one worker plays the module's fixture once (scripts/test)
    needs_chromium,
]

SEGMENTS = 12


@dataclass
class Observations:
    durations: list[float]
    ffmpeg: dict[str, FfmpegRun]
    hlsjs: dict[str, HlsJsRun]
    asked: dict[str, list[Asked]]  # by client: <scenario>-<player>

    def lost(self, scenario: str, player: str) -> list[Asked]:
        """The player's requests for the lost segment's URI."""
        return [a for a in self.asked[f"{scenario}-{player}"] if a.name == segment_name(LOST)]

    def timeline(self, scenario: str) -> float:
        """Seconds the final playlist lists (B lacks the lost segment; C lists it as a gap)."""
        return sum(e.duration for e in entries(scenario, self.durations))

    def table(self) -> str:
        rows = []
        for s in SCENARIOS:
            f, h = self.ffmpeg[s], self.hlsjs[s]
            rows.append(
                f"{s}: ffmpeg exit={f.exit_code} frames={f.frames} ({f.frames / FPS:.2f}s)"
                f" out_time={f.out_time:.2f}"
                f" asked_lost={self.lost(s, 'ffmpeg')} warnings={f.warnings}\n"
                f"   hls.js {h.log['version']} t={h.current_time:.2f}/{h.duration:.2f} ended={h.log['ended']}"
                f" stuck={h.log['stuck']} asked_lost={self.lost(s, 'hlsjs')}"
                f" stalls={h.log['stalls']} waiting={h.waiting} played={h.played}"
                f" waited_at_hole_ms={h.waited_ms(LOST - 1, LOST + 1)}"
                f" errors={[(e['details'], e['fatal'], e['sn']) for e in h.errors]}"
            )
        return "\n".join(rows)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Observations:
    """Make the segments once, then play A, B and C with both players at the same time."""
    made = encode(tmp_path_factory.mktemp("gap-segments"), "gap", every(1, SEGMENTS), height=240)
    durations = list(made.durations)
    segments = {segment_name(i): body for i, body in enumerate(made.bodies)}
    observations = Observations(durations, *asyncio.run(observe(segments, durations)))
    print(observations.table())
    return observations


NO_SEQUENCE_TROUBLE = ("Media sequence changed", "expired from playlists")
# ffmpeg's hls demuxer feeds the segments through one MPEG-TS demuxer, so when a segment is missing the
# continuity counters jump at the join and it flags the last video frame before the hole as corrupt.
# That comes from the lost bytes themselves, whichever tag marks the hole (B and C alike).
CORRUPT_AT_JOIN = re.compile(
    r"\[warning\] (Packet corrupt \(stream = 0, dts = \d+\)\.|corrupt input packet in stream 0)$"
)
HOLE_STALLS = {"bufferStalledError", "bufferSeekOverHole", "bufferNudgeOnStall"}


def test_the_playlists_are_the_three_cases(observed: Observations) -> None:
    d = observed.durations
    b_first, b_last = render("B", d, FIRST_LISTED), render("B", d, SEGMENTS)
    c_mid, c_last = render("C", d, LOST + 2), render("C", d, SEGMENTS)
    assert "#EXT-X-ENDLIST" not in b_first and "#EXT-X-PLAYLIST-TYPE" not in b_last  # live, sliding
    assert "#EXT-X-VERSION:3" in b_last and segment_name(LOST) not in b_last
    after = segment_name(LOST + 1)
    after_hole = f"#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:06.000Z\n#EXTINF:1.000,\n{after}"
    assert "#EXT-X-DISCONTINUITY\n" + after_hole in b_last
    assert "#EXT-X-MEDIA-SEQUENCE:5\n" in b_last  # 11 entries, a window of 6
    assert "#EXT-X-VERSION:8" in c_mid and f"#EXTINF:1.000,\n#EXT-X-GAP\n{segment_name(LOST)}\n" in c_mid
    assert "#EXT-X-DISCONTINUITY\n" not in c_mid + c_last and "#EXT-X-MEDIA-SEQUENCE:6\n" in c_last


def _played(h: HlsJsRun) -> list[tuple[float, float]]:
    """The played ranges, less a start-up sliver at 0 s (a loaded machine's stall, not the hole at 5 s)."""
    return [r for r in h.played if r[1] > 0.5]


# Where a hole would show in hls.js's playback: from the join (segment 5's place, 5 s) through the first
# segment after it. A stall there may be the stream's; one elsewhere is the machine's.
JOIN = (4.0, 6.5)


def _at_join(t: float) -> bool:
    return JOIN[0] < t < JOIN[1]


def _errors(h: HlsJsRun, join: bool = True) -> list[dict[str, Any]]:
    """hls.js's error events, less a non-fatal bufferStalledError away from the join (anywhere for the
    baseline, `join` False): a starved page's buffer running dry while playback goes on in one range. A stall
    at the join, where a hole would show, still counts."""
    return [e for e in h.errors
            if e["fatal"] or e["details"] != "bufferStalledError" or (join and _at_join(float(e.get("t") or 0.0)))]


def test_baseline_plays_whole_in_both(observed: Observations) -> None:
    f, h = observed.ffmpeg["A"], observed.hlsjs["A"]
    assert f.exit_code == 0 and f.warnings == [] and f.frames == SEGMENTS * FPS, observed.table()
    assert _errors(h, join=False) == [] and h.log["ended"] and not h.log["stuck"], observed.table()
    assert h.current_time >= observed.timeline("A") - 0.25, observed.table()
    assert len(_played(h)) == 1, observed.table()


def test_discontinuity_ffmpeg_reads_on_cleanly(observed: Observations) -> None:
    """B with ffmpeg: exit 0, no sequence trouble, never asks for the lost URI, reads the 11 s that exist."""
    f = observed.ffmpeg["B"]
    assert f.exit_code == 0, observed.table()
    assert not [line for line in f.log if any(t in line for t in NO_SEQUENCE_TROUBLE)], observed.table()
    assert [w for w in f.warnings if not CORRUPT_AT_JOIN.search(w)] == [], observed.table()
    assert observed.lost("B", "ffmpeg") == [], observed.table()
    assert f.frames == (SEGMENTS - 1) * FPS, observed.table()


def test_discontinuity_hlsjs_plays_past_the_hole(observed: Observations) -> None:
    """B with hls.js: no ERROR event at all, the lost URI never asked, one continuous play to the end."""
    h = observed.hlsjs["B"]
    assert h.fatal == [] and h.log["mediaError"] is None and h.log["playError"] is None, observed.table()
    assert _errors(h) == [], observed.table()
    assert h.log["ended"] and not h.log["stuck"], observed.table()
    assert h.current_time >= observed.timeline("B") - 0.25, observed.table()  # 11 s: the hole is not in it
    played = _played(h)
    assert len(played) == 1 and played[0][1] >= observed.timeline("B") - 0.25, observed.table()
    assert not [t for t in h.waiting if _at_join(t)], observed.table()  # no stall at the join
    assert observed.lost("B", "hlsjs") == [], observed.table()
    frags = {f["sn"]: f["cc"] for f in h.log["frags"]}
    assert frags.get(LOST - 1) == 0 and frags.get(LOST) == 1, observed.table()  # sn 5 is segment 6, new cc


def test_gap_ffmpeg_asks_for_it_and_skips_the_404(observed: Observations) -> None:
    """C with ffmpeg: it does not know EXT-X-GAP. It requests the URI, logs the 404, skips, exits 0."""
    f = observed.ffmpeg["C"]
    assert f.exit_code == 0, observed.table()
    lost = observed.lost("C", "ffmpeg")
    assert lost and all(a.status == 404 for a in lost), observed.table()
    joined = "\n".join(f.warnings)
    assert "HTTP error 404" in joined, observed.table()
    assert f"Failed to open segment {LOST} of playlist 0" in joined, observed.table()
    assert f"Segment {LOST} of playlist 0 failed too many times, skipping" in joined, observed.table()
    assert not [line for line in f.log if any(t in line for t in NO_SEQUENCE_TROUBLE)], observed.table()
    assert f.frames == (SEGMENTS - 1) * FPS, observed.table()


def test_gap_hlsjs_skips_the_uri_and_jumps_the_hole(observed: Observations) -> None:
    """C with hls.js: no request for the gap URI, a non-fatal fragGap, a seek over the 1 s hole, the end."""
    h = observed.hlsjs["C"]
    assert h.fatal == [] and h.log["mediaError"] is None and h.log["playError"] is None, observed.table()
    assert observed.lost("C", "hlsjs") == [], observed.table()
    assert [(e["details"], e["sn"]) for e in h.errors if e["details"] == "fragGap"] == [("fragGap", LOST)], (
        observed.table()
    )
    assert {e["details"] for e in h.errors} <= {"fragGap"} | HOLE_STALLS, observed.table()
    assert h.log["ended"] and not h.log["stuck"], observed.table()
    assert h.current_time >= observed.timeline("C") - 0.25, observed.table()  # 12 s: the gap keeps its place
    # Nothing is played where the gap is: playback stops just before 5 s and resumes after 6 s.
    played = _played(h)
    assert len(played) == 2, observed.table()
    (_, before), (after, end) = played
    assert 4.5 <= before <= LOST + 0.05 and LOST + 1 <= after < LOST + 1.5, observed.table()
    # from 'waiting' at the hole (before it, or where playback resumed after it) to 'playing' after it
    waited = h.waited_ms(LOST - 1, LOST + 1, resumed=after)
    assert waited is not None and waited < 3000, observed.table()
    assert end >= observed.timeline("C") - 0.25, observed.table()
