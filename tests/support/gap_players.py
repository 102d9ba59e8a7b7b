"""The gap players (tests/test_gap_players.py): ffmpeg and hls.js (in Debian's Chromium) playing the
GapServer's three scenarios at once, each bounded; FfmpegRun and HlsJsRun are what each did."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from tests.support.browser import POLL_MS, shared_chromium
from tests.support.gap_server import SCENARIOS, GapServer
from tests.support.local_http import serve_local
from tests.support.players import progress, read_with_ffmpeg, warned

FPS = 30
PLAYER_TIMEOUT = 40.0  # a stuck player is caught by the page's own watchdog long before this


@dataclass
class FfmpegRun:
    exit_code: int
    log: list[str]  # every line it printed at warning level or above
    frames: int  # video frames read (with -c copy: demuxed, not decoded)
    out_time: float  # seconds, the last output timestamp
    asked: list[tuple[str, int]]

    @property
    def seconds(self) -> float:
        return self.frames / FPS

    @property
    def warnings(self) -> list[str]:
        return warned(self.log)


@dataclass
class HlsJsRun:
    log: dict[str, Any]  # window.gapLog
    current_time: float
    duration: float
    played: list[tuple[float, float]]
    asked: list[tuple[str, int]]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.log["errors"])

    @property
    def fatal(self) -> list[dict[str, Any]]:
        return [e for e in self.errors if e["fatal"]]

    def waited_ms(self, start: float, end: float, resumed: float | None = None) -> int | None:
        """Wall time from the first 'waiting' with currentTime in [start, end) to 'playing' at >= end.

        resumed: where playback went on after a hole that ends at `end`; a 'waiting' read there counts
        too. The page reads currentTime when the event is handled, and on a loaded machine the player's
        seek over the hole can come first (the only 'waiting' then read past the hole)."""
        last = end if resumed is None else max(end, resumed + 0.05)  # the same clock, read twice
        waited = None
        for kind, t, ms in self.log["media"]:
            if waited is None and kind == "waiting" and (start <= t < end or end <= t <= last):
                waited = ms
            elif waited is not None and kind == "playing" and t >= end:
                return int(ms - waited)
        return None


async def _run_hlsjs(browser: Any, base: str, scenario: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from playwright.async_api import TimeoutError as PlaywrightTimeoutError

    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{base}/player.html?src=/p/{scenario}/hlsjs/index.m3u8")
        with contextlib.suppress(PlaywrightTimeoutError):  # an observation too: `done` stays false
            await page.wait_for_function(
                "() => window.gapLog && window.gapLog.done", timeout=PLAYER_TIMEOUT * 1000, polling=POLL_MS
            )
        log = await page.evaluate("() => JSON.parse(JSON.stringify(window.gapLog))")
        video = await page.evaluate(
            """() => {
                const v = document.getElementById('v');
                const played = [];
                for (let i = 0; i < v.played.length; i++) played.push([v.played.start(i), v.played.end(i)]);
                return { currentTime: v.currentTime, duration: v.duration, played };
            }"""
        )
        return log, video
    finally:
        await context.close()


async def _bounded_hlsjs(browser: Any, base: str, scenario: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One page, bounded as a whole: a renderer that stops answering fails its scenario by name instead
    of holding the module until pytest's timeout."""
    try:
        return await asyncio.wait_for(_run_hlsjs(browser, base, scenario), PLAYER_TIMEOUT + 30)
    except TimeoutError:
        raise AssertionError(
            f"{scenario}: the hls.js page stopped answering within {PLAYER_TIMEOUT + 30:.0f} s") from None


async def observe(server: GapServer) -> tuple[dict[str, FfmpegRun], dict[str, HlsJsRun]]:
    runner, base = await serve_local(server.app())
    try:
        async with shared_chromium() as browser:
            ffmpeg_runs, hlsjs_runs = await asyncio.gather(
                asyncio.gather(*(read_with_ffmpeg(f"{base}/p/{s}/ffmpeg/index.m3u8", PLAYER_TIMEOUT)
                                 for s in SCENARIOS)),
                asyncio.gather(*(_bounded_hlsjs(browser, base, s) for s in SCENARIOS)),
            )
    finally:
        await runner.cleanup()

    ffmpeg: dict[str, FfmpegRun] = {}
    for scenario, (code, out, err) in zip(SCENARIOS, ffmpeg_runs):
        ffmpeg[scenario] = FfmpegRun(exit_code=code, log=[line for line in err.splitlines() if line.strip()],
                                     frames=int(progress(out, "frame")),
                                     out_time=int(progress(out, "out_time_us").lstrip("-") or 0) / 1e6,
                                     asked=server.asked(scenario, "ffmpeg"))
    hlsjs: dict[str, HlsJsRun] = {}
    for scenario, (log, video) in zip(SCENARIOS, hlsjs_runs):
        hlsjs[scenario] = HlsJsRun(
            log=log, current_time=float(video["currentTime"]), duration=float(video["duration"] or 0),
            played=[(float(a), float(b)) for a, b in video["played"]], asked=server.asked(scenario, "hlsjs"),
        )
    return ffmpeg, hlsjs
