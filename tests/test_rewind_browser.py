"""Rewind in the viewer: hls.js in headless Chromium on a long live window (a backlog of real 1 s segments
dated up to now, listed in a burst). It seeks back to the right PROGRAM-DATE-TIME, goes live again with its
button, and /?start=<time> starts there, with the same playlist URLs; a short window has no seek bar."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import (POLL_MS, needs_chromium, open_viewer, page_errors, shared_chromium,
                                   until_page)
from tests.support.observe import listed_at_least
from tests.support.owncast_writer import HandFedOwncast, keep_writing, one_run_segments, write_next
from tests.support.service_process import ServiceProcess, service_env

# Each wait has its own deadline, generous for a loaded machine; the whole test's limit bounds their sum.
pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(300), needs_chromium]

# The rewind window, in one place; the live window alone (REWIND_SECONDS=0) gets no seek bar.
LONG_WINDOW = {"REWIND_SECONDS": "120", "WINDOW_SECONDS": "30"}
SHORT_WINDOW = {"REWIND_SECONDS": "0", "WINDOW_SECONDS": "30"}
BACKLOG = 90  # seconds of stream in Owncast's folder when the service starts
SHORT_BACKLOG = 32  # the short window's Owncast lists a little more than its window
SEGMENTS = 180  # encoded: the backlog, then one a second for longer than the test runs
TD = 1.0  # target duration (Owncast's lowest latency level)
NAME = re.compile(r"-(\d+)\.ts$")
ABOUT_A_MINUTE = r"(0:5[5-9]|1:0[0-5])"  # 55 to 65 s, as the clock and the seek bar's text say it

STATS = "() => JSON.parse(JSON.stringify(window.viewerStats))"
STATS_NOW = "() => ({...JSON.parse(JSON.stringify(window.viewerStats)), now: Date.now()})"
# The playhead and the date hls.js gives it, read at one instant.
NOW = "() => ({t: document.querySelector('video').currentTime, date: window.viewerStats.playingDate})"
# NOW, and where the video's current played range began (null before a date is shown).
PLAYED_FROM = ("() => { const v = document.querySelector('video');"
               " const date = window.viewerStats.playingDate; const r = v.played; let from = null;"
               " for (let i = 0; i < r.length; i += 1) if (r.start(i) <= v.currentTime) from = r.start(i);"
               " return date && from !== null ? {t: v.currentTime, date, from} : null; }")
# At the live edge, by the viewer's two measures (hls.js's latency lags a seek by a timeupdate: waited for).
SEEKABLE = "(window.viewerStats.seekableEnd - window.viewerStats.seekableStart)"
NO_SEEK_BAR = "document.querySelector('#timeline').hidden"
CLOCK = "document.querySelector('#behind').textContent"
AT_EDGE = (f"() => {{ const v = window.viewerStats; return v.playingDate !== null && v.latency !== null"
           f" && v.latency < {5 * TD} && v.behindLive < {3 * TD}; }}")


@dataclass
class Stream:
    long: ServiceProcess
    short: ServiceProcess
    t0: float  # PROGRAM-DATE-TIME of segment 0: segment n covers [t0 + n, t0 + n + 1)
    owncast: HandFedOwncast

    def number(self, url: str) -> int:
        m = NAME.search(urlsplit(url).path)
        assert m, url
        return int(m.group(1))


@pytest.fixture
async def stream(tmp_path: Path, seaweed: SeaweedS3) -> AsyncIterator[Stream]:
    segments = await asyncio.to_thread(one_run_segments, tmp_path / "encoded", SEGMENTS)
    t0 = time.time() - BACKLOG
    long = HandFedOwncast(tmp_path / "hls", b"", variants=(0,), list_size=10_000, t0=t0)
    short = HandFedOwncast(tmp_path / "hls-short", b"", variants=(0,), list_size=SHORT_BACKLOG, t0=t0)
    for owncast in (long, short):
        while owncast.number < BACKLOG:  # written at once: Owncast's list as the service first finds it
            write_next(owncast, segments)
    feeding = asyncio.gather(keep_writing(long, segments), keep_writing(short, segments))
    try:
        async with (
            ServiceProcess(service_env(tmp_path / "hls", seaweed, tmp_path / "state", **LONG_WINDOW),
                           tmp_path / "service") as long_service,
            ServiceProcess(service_env(tmp_path / "hls-short", seaweed, tmp_path / "state-short",
                                       R2_KEY_PREFIX="short", **SHORT_WINDOW), tmp_path / "service-short") as short_service,
        ):
            yield Stream(long_service, short_service, t0, long)
    finally:
        feeding.cancel()


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def until_shown(page: Any, condition: str, what: str, arg: Any = None) -> None:
    """Until `condition` (of `arg`) holds in the page, within 40 s; else a failure naming `what`."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await until_page(page, condition, arg, timeout=40)
    except PlaywrightTimeout:
        shown = f"{await page.inner_text('#behind')!r} {await page.evaluate(STATS)}"
        raise AssertionError(f"{what}: {shown}") from None


async def test_seek_back_go_live_and_start_at_a_time(stream: Stream) -> None:
    requests: list[str] = []
    errors: list[str] = []

    async def new_page(url: str) -> Any:
        page = await browser.new_page(viewport={"width": 1100, "height": 800})
        page.on("request", lambda r: requests.append(r.url))
        page_errors(page, errors)
        await open_viewer(page, url)
        return page

    # The players come once the services list their backlogs (uploaded first, in order: seconds under load).
    await listed_at_least(f"{stream.long.url}/live/0/playlist.m3u8", BACKLOG)
    await listed_at_least(f"{stream.short.url}/live/0/playlist.m3u8", int(float(SHORT_WINDOW["WINDOW_SECONDS"])) - 5)
    async with shared_chromium() as browser:
        page = await new_page(f"{stream.long.url}/")
        # At the live edge, the whole backlog seekable and the seek bar shown.
        await until_shown(page, AT_EDGE, "never at the live edge")
        await until_shown(page, f"() => {SEEKABLE} >= 80", "the backlog never seekable")
        # The seek bar shows on the next timeupdate once the player plays.
        await until_shown(page, f"() => !{NO_SEEK_BAR}", f"no seek bar ({errors})")
        # LIVE by the viewer's own rule (within 2 target durations, stricter than AT_EDGE): waited for, as a
        # loaded machine starts hls.js late and its stall rule brings it back within seconds.
        await until_shown(page, f"() => {CLOCK} === 'LIVE' && window.viewerStats.behindLive <= {2 * TD}",
                          "never LIVE")
        stats = await page.evaluate(STATS_NOW)
        # The date shown is now less the latency ("now" read in the page, with the stats).
        assert abs(stats["playingDate"] - (stats["now"] - 1000 * stats["latency"])) < 2000 * TD, stats

        # 60 s back through the seek bar (its value: seconds from the end of the window).
        before = await page.evaluate(NOW)
        value = int(await page.input_value("#seek"))
        await page.locator("#seek").fill(str(value - 60))
        await until_shown(page, "t => { const v = document.querySelector('video'); return !v.seeking"
                                " && v.currentTime > t && v.currentTime < t + 10 && v.readyState >= 3; }",
                          "the seek a minute back never landed", before["t"] - 60 + 1)
        after = await page.evaluate(NOW)
        # A minute back (the seek bar counts whole seconds), not more.
        assert after["t"] >= before["t"] - 60 - TD, (before, after)
        # The date moved with the playhead: the picture shown is the segment dated 60 s earlier...
        expected = before["date"] + (after["t"] - before["t"]) * 1000
        assert abs(after["date"] - expected) <= 1000 * TD, (before, after)
        # ...and that segment is the one fetched: Owncast's segment n is dated t0 + n.
        number = int(after["date"] / 1000 - stream.t0)
        fetched = {stream.number(u) for u in requests if u.endswith(".ts")}
        assert number in fetched, (number, sorted(fetched))
        # About a minute behind live (whole seconds and hls.js's live delay move it a little).
        await until_shown(page, f"() => /^-{ABOUT_A_MINUTE}$/.test({CLOCK})", "the clock, not a minute back")
        assert 55 <= (await page.evaluate(STATS))["behindLive"] < 66
        # What a screen reader says of the seek bar: the time of day and the distance to live.
        said = await page.get_attribute("#seek", "aria-valuetext")
        assert said and re.fullmatch(rf"\d\d:\d\d:\d\d, {ABOUT_A_MINUTE} behind live", said), said
        await page.set_viewport_size({"width": 360, "height": 740})  # a phone: nothing wider than it
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
        await page.set_viewport_size({"width": 1100, "height": 800})

        # The live button: back at the edge.
        await page.get_by_role("button", name="Go live").click(timeout=40_000)
        await until_shown(page, "() => window.viewerStats.behindLive !== null"
                                " && window.viewerStats.behindLive < 2 && window.viewerStats.latency < 5",
                          "the live button, not at the edge")
        await until_shown(page, f"() => {CLOCK} === 'LIVE'", "the live button, never LIVE")
        await page.close()

        # /?start=<45 s before the edge>: starts there and plays on at live pace.
        at = float(int(time.time() - 45))
        page = await new_page(f"{stream.long.url}/?start={rfc3339(at)}")
        # The first picture's date: the date shown less what it played since (not when this poll came).
        seen = await (await page.wait_for_function(PLAYED_FROM,
                                                   timeout=40_000, polling=POLL_MS)).json_value()
        first = seen["date"] - 1000 * (seen["t"] - seen["from"])
        assert -1000 * TD <= first - at * 1000 <= 1500 * TD, (first / 1000, at, seen)
        t1, w1 = (await page.evaluate(NOW))["t"], time.time()
        await until_shown(page, "t => document.querySelector('video').currentTime > t", "no play on", t1 + 4)
        t2, w2 = (await page.evaluate(NOW))["t"], time.time()
        assert t2 - t1 >= 0.5 * (w2 - w1), (t1, t2, w2 - w1)  # playing on, not stalled (a loaded machine slows it)
        stats = await page.evaluate(STATS)
        assert 35 < stats["behindLive"] < 55, stats  # still back there: no jump to live
        assert stats["errors"] == [], stats
        assert re.search(r"[?&]start=\d{4}-\d\d-\d\dT", stats["momentLink"]), stats
        await page.close()

        # A time already gone (here in Unix seconds): the earliest moment kept, and the page says so.
        page = await new_page(f"{stream.long.url}/?start={int(stream.t0) - 600}")
        await until_shown(page, "() => window.viewerStats.playingDate", "a time gone, never playing")
        stats = await page.evaluate(STATS)
        assert 0 <= stats["playingDate"] / 1000 - stream.t0 < 10, (stats, stream.t0)  # the backlog's start
        assert "no longer available" in await page.inner_text("#notice")
        await page.close()

        # A time after the live edge: live.
        page = await new_page(f"{stream.long.url}/?start={rfc3339(time.time() + 3600)}")
        await until_shown(page, AT_EDGE, "a time ahead, not live")
        await page.close()

        # Without rewind, no seek bar. Last: the backlog stays listed for about a window, until then even
        # this window reaches back past the seek bar's 45 s.
        page = await new_page(f"{stream.short.url}/")
        await until_shown(page, f"() => {SEEKABLE} >= 25 && {SEEKABLE} < 45", "the short window's range")
        await until_shown(page, f"() => {NO_SEEK_BAR}", "a seek bar without rewind")
    playlists = [u for u in requests if ".m3u8" in u]
    assert playlists and not [u for u in playlists if "start" in parse_qs(urlsplit(u).query)], playlists
    assert errors == [], errors
