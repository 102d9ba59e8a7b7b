"""The viewer count and the embed form in Debian's headless Chromium, on the live demo stream (SeaweedFS,
the Owncast emulator, the service): pages that play are counted, here and in a stand-in that counts as
Owncast does (tests/support/owncast_viewers.py); closed pages leave the count; /embed plays inside a
page of a site FRAME_ANCESTORS names, and a site it does not name is refused.

P2P on or off does not change the count: tests/test_viewers.py proves it on the count itself (the page
only reports the flag), rather than starting the tracker and WebRTC here too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.service import Service
from tests.support.browser import launch_chromium, needs_chromium, open_viewer, watch
from tests.support.local_http import serve_local
from tests.support.owncast_viewers import OwncastViewers
from tests.support.service_process import running_service, service_env
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium,
              pytest.mark.asyncio(loop_scope="module")]

TIMEOUT = 3  # VIEWER_TIMEOUT: short, so a page whose goodbye is lost leaves the count soon
WAIT = 30.0  # seconds any one browser condition may take on a busy machine


class Framer:
    """Another origin (127.0.0.1, another port) whose page frames the viewer's /embed."""

    def __init__(self) -> None:
        self.target = ""  # the service's URL, once it runs
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _page(self, _request: web.Request) -> web.Response:
        snippet = (f'<iframe src="{self.target}/embed" width="640" height="360" allow="autoplay; fullscreen" '
                   'allowfullscreen style="border:0"></iframe>')  # README, "Embedding"
        return web.Response(text=f"<!doctype html><title>a site</title><h1>My site</h1>{snippet}",
                            content_type="text/html")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        self._runner, self.url = await serve_local(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Stack:
    service: Service
    owncast: OwncastViewers
    allowed: Framer
    other: Framer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("viewers")
    allowed, other = Framer(), Framer()
    await allowed.start()
    await other.start()
    try:
        async with (
            SeaweedS3(tmp / "seaweed") as s3,
            OwncastEmulator(tmp / "hls", segment_seconds=1) as emulator,
            OwncastViewers(purge_timeout=TIMEOUT, prune_every=0.5) as owncast,
        ):
            env = service_env(tmp / "hls", s3, tmp / "state", WINDOW_SECONDS="8", VIEWER_TIMEOUT=str(TIMEOUT),
                              OWNCAST_URL=owncast.url, FRAME_ANCESTORS=f"'self' {allowed.url}",
                              VIEWER_SOURCES=allowed.url)
            async with running_service(env) as service:  # in this process: the test watches its audience
                allowed.target = other.target = service.url
                await emulator.wait_for_segments(0, 3, timeout=20)
                yield Stack(service, owncast, allowed, other)
    finally:
        await allowed.stop()
        await other.stop()


async def test_playing_pages_are_counted_here_and_by_owncast_and_closed_ones_leave(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.async_api import async_playwright

    audience = stack.service.audience
    left: list[str] = []  # the goodbyes the service got
    leave = audience.leave

    def recorded(viewer_id: str) -> None:
        left.append(viewer_id)
        leave(viewer_id)

    monkeypatch.setattr(audience, "leave", recorded)
    async with async_playwright() as pw, aiohttp.ClientSession() as http:
        browser = await launch_chromium(pw)
        try:
            # Two browsers on one machine: Owncast tells viewers apart by address and User-Agent only.
            first = await browser.new_context(user_agent="viewer-A")
            second = await browser.new_context(user_agent="viewer-B")
            pages = [await first.new_page(), await first.new_page(), await second.new_page()]
            for page in pages:
                await open_viewer(page, f"{stack.service.url}/")
            await until(lambda: audience.watching == 3, "3 pages counted", WAIT)
            await pages[2].wait_for_function("() => document.getElementById('watching').textContent === "
                                             "'3 watching'", timeout=WAIT * 1000)
            async with http.get(f"{stack.service.url}/health") as response:
                assert (await response.json())["viewers"] == {"watching": 3, "p2p": 0, "stalled_5min": 0}
            # Owncast's count: the two tabs of one browser are one viewer to it, as on its own page.
            await until(lambda: stack.owncast.viewer_count == 2, "Owncast counting 2", WAIT)
            assert {v.user_agent for v in stack.owncast.viewers.values()} == {"viewer-A", "viewer-B"}

            # Closing a page: out by its goodbye...
            await pages[0].close()
            # One page's goodbye, maybe twice: a beat still on its way when the page closed is followed by
            # a second goodbye (viewer/watching.js), in case it arrives after the first.
            await until(lambda: audience.watching == 2 and len(set(left)) == 1, "the closed page's goodbye",
                        WAIT)
            # ...or, when it never says goodbye (its renderer crashes), once VIEWER_TIMEOUT has passed.
            crash = await second.new_cdp_session(pages[2])
            with contextlib.suppress(Exception):  # the page dies under the command, which may never answer
                await asyncio.wait_for(crash.send("Page.crash"), 5)
            await until(lambda: audience.watching == 1, "the crashed page expired", WAIT)
            assert len(set(left)) == 1  # no goodbye came from it
            # Owncast drops viewer-B after its own purge timeout; viewer-A still plays in one tab.
            await until(lambda: stack.owncast.viewer_count == 1, "Owncast down to 1", WAIT)
            await watch(pages[1], 1)
            assert audience.watching == 1 and stack.owncast.viewer_count == 1
            await first.close()
            await until(lambda: audience.watching == 0, "every page gone", WAIT)
        finally:
            await browser.close()


async def _frame_of(page: Any, host_url: str) -> Any:
    """The iframe's Frame once its navigation is over (loaded, or refused)."""
    await page.goto(host_url)
    handle = await page.wait_for_selector("iframe")
    frame = await handle.content_frame()
    assert frame is not None
    await frame.wait_for_load_state("load", timeout=WAIT * 1000)
    return frame


async def test_embed_plays_framed_by_a_named_site_and_is_refused_elsewhere(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            frame = await _frame_of(page, stack.allowed.url)
            await frame.wait_for_function("() => window.viewerStats && window.viewerStats.state === 'playing'",
                                          timeout=WAIT * 1000)
            start = await frame.evaluate("() => document.querySelector('video').currentTime")
            await frame.wait_for_function("t => document.querySelector('video').currentTime > t", arg=start + 2,
                                          timeout=WAIT * 1000)
            # The video alone: the title, status bar and panels are not shown in the embed form.
            assert await frame.is_visible("video")
            assert not await frame.is_visible("h1") and not await frame.is_visible(".bar")
            # Framed by another site, the page is still this service's own: its beats count (issue 41).
            await until(lambda: stack.service.audience.watching == 1, "the framed page counted", WAIT)

            refused: list[str] = []
            other = await browser.new_page()
            other.on("console", lambda m: refused.append(m.text) if "frame-ancestors" in m.text else None)
            frame = await _frame_of(other, stack.other.url)
            # Chromium shows its error page in place of the viewer; the viewer's script never runs there.
            assert await frame.evaluate("() => document.querySelector('video') === null && !window.viewerStats")
            await until(lambda: bool(refused), "Chromium's frame-ancestors refusal", WAIT)
        finally:
            await browser.close()


_BEATS = """async (url) => {
  const results = [];
  for (let n = 0; n < 25; n++) {
    const id = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
      .replace(/[+]/g, '-').replace(/[/]/g, '_').replace(/=+$/, '');
    try {
      const response = await fetch(url, { method: 'POST', cache: 'no-store', credentials: 'omit',
        headers: { 'Hb-Watching': id } });
      results.push(String(response.status));
    } catch (err) {
      results.push(err.name);
    }
  }
  return results;
}"""


async def test_another_sites_page_cannot_make_its_visitors_count(stack: Stack) -> None:
    """Issue 41, V2: a page on another origin (127.0.0.1, another port) fetches the heartbeat 25 times as
    the viewer does, in real Chromium: the preflight is refused, nothing is sent, nothing counted. The
    same fetches from a document of the service's own origin count (the control)."""
    from playwright.async_api import async_playwright

    audience = stack.service.audience
    # The framed page of the test before may still count (its goodbye lost): gone within VIEWER_TIMEOUT.
    await until(lambda: audience.watching == 0, "earlier tests' pages gone", WAIT)
    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            await page.goto(stack.other.url)  # another site
            before, refused = audience.watching, dict(audience.refused)
            results = await page.evaluate(_BEATS, f"{stack.service.url}/live/watching")
            assert results == ["TypeError"] * 25  # "Failed to fetch": the preflight was refused
            assert audience.watching == before == 0 and audience.refused == refused
            # The control: the same fetches from the service's own origin are counted.
            await page.goto(f"{stack.service.url}/config.json")
            results = await page.evaluate(_BEATS, "live/watching")
            assert results == ["200"] * 25 and audience.watching == 25
        finally:
            await browser.close()
    await until(lambda: audience.watching == 0, "the control's beats expired", WAIT)


async def test_src_plays_only_this_sites_streams_unless_the_operator_allows_more(stack: Stack) -> None:
    """Issue 41, E1: a link to the service's page (/ or /embed) naming another site's playlist in ?src=
    does not play it under the service's origin: the page says so and never asks that site. The
    service's own playlists play; an origin VIEWER_SOURCES lists (here `allowed`) is asked."""
    from playwright.async_api import async_playwright

    service = stack.service.url
    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            for path in ("/", "/embed"):
                await page.goto(f"{service}{path}?src={stack.other.url}/live/master.m3u8")
                await page.wait_for_function(
                    "() => window.viewerStats && window.viewerStats.state === 'error'", timeout=WAIT * 1000)
                said = await page.evaluate("() => document.getElementById('status').textContent")
                assert "only this site's own stream" in said
            await page.goto(f"{service}/?src={stack.allowed.url}/live/master.m3u8")  # allowed: asked (a 404)
            await until(lambda: any(u.startswith(f"{stack.allowed.url}/live/") for u in asked), "asked", WAIT)
            await open_viewer(page, f"{service}/?src=/hls/stream.m3u8")  # this service's own: plays
            assert not [u for u in asked if u.startswith(stack.other.url)], asked
        finally:
            await browser.close()
