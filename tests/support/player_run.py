"""One run of a player against a stream, bounded: a page of tests/support/player_pages.py's PAGES in Chromium
until its probe says it is done, or ffmpeg reading the stream as a player does. What each did is an
observation for the test to judge (PageRun, FfmpegRun), a player that never finished included.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

from broadcaster.demo.ffmpeg import ffmpeg_exe
from tests.support.browser import until_page
from tests.support.page_open import open_page


@dataclass
class PageRun:
    log: dict[str, Any] = field(default_factory=dict)  # window.probe (player_pages.PROBE_JS)
    console: list[str] = field(default_factory=list)  # console warnings and errors, page errors
    navigations: int = 0  # page loads: 1 means the page never reloaded
    video: dict[str, Any] = field(default_factory=dict)  # VIDEO_JS's, once done


# The video element at the end: its time, duration and the ranges it played.
VIDEO_JS = """() => {
  const v = document.querySelector('video'), played = [];
  for (let i = 0; i < v.played.length; i++) played.push([v.played.start(i), v.played.end(i)]);
  return { currentTime: v.currentTime, duration: v.duration, played };
}"""


async def play_page(browser: Any, url: str, timeout: float) -> PageRun:
    """The player's page at `url` until its probe is done (or `timeout` seconds: `done` stays false, an
    observation too), bounded as a whole: a renderer that stops answering becomes an observation, not a
    hung suite."""
    run = PageRun()
    try:
        await asyncio.wait_for(_play_page(browser, url, timeout, run), timeout + 45)
    except TimeoutError:
        run.console.append(f"harness: the page stopped answering within {timeout + 45:.0f} s")
    return run


async def _play_page(browser: Any, url: str, timeout: float, run: PageRun) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeoutError

    opened = await open_page(browser, None)
    page = opened.page
    run.console = opened.said
    page.on("pageerror", lambda err: run.console.append(f"pageerror: {err}"[:300]))

    def navigated(frame: Any) -> None:
        if frame == page.main_frame:
            run.navigations += 1

    page.on("framenavigated", navigated)
    try:
        await page.goto(url)
        with contextlib.suppress(PlaywrightTimeoutError):  # an observation too: `done` stays false
            await until_page(page, "() => window.probe && window.probe.done", timeout=timeout)
        run.log = await page.evaluate("() => JSON.parse(JSON.stringify(window.probe))")
        run.video = await page.evaluate(VIDEO_JS)
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(opened.context.close(), 15)


@dataclass
class FfmpegRun:
    exit_code: int
    log: list[str]  # every line it printed
    frames: int  # video frames read (with -c copy: demuxed, not decoded)
    out_time: float  # seconds, the last output timestamp

    @property
    def warnings(self) -> list[str]:
        """Its lines at warning level or above (-loglevel level+warning)."""
        return [line for line in self.log if re.search(r"\[(warning|error|fatal|panic)\] ", line)]


async def read_with_ffmpeg(url: str, timeout: float) -> FfmpegRun:
    """ffmpeg reading `url` as a player does (`-c copy -f null -`), killed after `timeout` seconds."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "level+warning", "-nostats",
        "-progress", "pipe:1", "-i", url, "-c", "copy", "-f", "null", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    assert proc.returncode is not None
    progress = out.decode(errors="replace")

    def last(key: str) -> str:  # the last value the -progress lines gave `key` ("0" without)
        values = re.findall(rf"^{key}=(\S+)$", progress, re.MULTILINE)
        return values[-1] if values else "0"

    lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
    out_time = int(last("out_time_us").lstrip("-") or 0) / 1e6
    return FfmpegRun(proc.returncode, lines, int(last("frame")), out_time)
