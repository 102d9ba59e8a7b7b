"""The gap players (tests/test_gap_players.py): ffmpeg and hls.js (in Debian's Chromium, the page of
tests/support/player_pages.py) playing the three scenarios at once, each a client of its own; HlsJsRun is
what hls.js did."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tests.support.browser import shared_chromium
from tests.support.gap_server import SCENARIOS, GapStream
from tests.support.player_pages import PAGES, player_pages
from tests.support.player_run import FfmpegRun, play_page, read_with_ffmpeg
from tests.support.scripted_stream import Asked, StreamServer

PLAYER_TIMEOUT = 40.0  # a stuck player is caught by the page's own watchdog long before this
STUCK_MS = 6000  # hls.js standing still this long anywhere in a scenario counts as stuck


@dataclass
class HlsJsRun:
    log: dict[str, Any]  # window.probe
    current_time: float
    duration: float
    played: list[tuple[float, float]]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.log["errors"])

    @property
    def fatal(self) -> list[dict[str, Any]]:
        return [e for e in self.errors if e["fatal"]]

    @property
    def waiting(self) -> list[float]:
        return [t for kind, t, _ms, _position in self.log["media"] if kind == "waiting"]

    def waited_ms(self, start: float, end: float, resumed: float | None = None) -> int | None:
        """Wall time from the first 'waiting' with currentTime in [start, end) to 'playing' at >= end.

        resumed: where playback went on after the hole; a 'waiting' read there counts too (on a loaded
        machine the player's seek over the hole can come before the page reads currentTime)."""
        last = end if resumed is None else max(end, resumed + 0.05)  # the same clock, read twice
        waited = None
        for kind, t, ms, _position in self.log["media"]:
            if waited is None and kind == "waiting" and (start <= t < end or end <= t <= last):
                waited = ms
            elif waited is not None and kind == "playing" and t >= end:
                return int(ms - waited)
        return None


async def _hlsjs(browser: Any, base: str, scenario: str) -> HlsJsRun:
    src = f"/c/{scenario}-hlsjs/live/0/playlist.m3u8"
    run = await play_page(browser, f"{base}/page/hlsjs?stuck={STUCK_MS}&src={src}", PLAYER_TIMEOUT)
    if not run.log:  # fails its scenario by name, not the module at pytest's timeout
        raise AssertionError(f"{scenario}: {run.console[-1:]}")
    video = run.video
    return HlsJsRun(run.log, float(video["currentTime"]), float(video["duration"] or 0),
                    [(float(a), float(b)) for a, b in video["played"]])


async def observe(segments: dict[str, bytes], durations: list[float]
                  ) -> tuple[dict[str, FfmpegRun], dict[str, HlsJsRun], dict[str, list[Asked]]]:
    """Both players of every scenario at once; what each did and asked, by client (<scenario>-<player>)."""
    async with StreamServer(player_pages(PAGES)) as server, shared_chromium() as browser:
        for s in SCENARIOS:
            for player in ("ffmpeg", "hlsjs"):
                server.add(f"{s}-{player}", GapStream(s, segments, durations))
        playlist = server.url + "/c/{}-ffmpeg/live/0/playlist.m3u8"
        ffmpeg_runs, hlsjs_runs = await asyncio.gather(
            asyncio.gather(*(read_with_ffmpeg(playlist.format(s), PLAYER_TIMEOUT) for s in SCENARIOS)),
            asyncio.gather(*(_hlsjs(browser, server.url, s) for s in SCENARIOS)),
        )
    asked = {name: stream.asked for name, stream in server.clients.items()}
    return dict(zip(SCENARIOS, ffmpeg_runs)), dict(zip(SCENARIOS, hlsjs_runs)), asked
