"""The viewer in headless Chromium on the live demo stream: every segment from the S3 host, its stats, the
stream going offline and back; a first visit makes few requests before the first frame, no redirect."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from broadcaster.demo.recordings import Recordings
from tests.support.browser import (needs_chromium, open_viewer, page_errors, shared_chromium, stat_rows,
                                   wait_for_state, watch)
from tests.support.live_demo import LiveDemo, live_demo
from tests.support.startup import first_visit

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.xdist_group("viewer_browser"),  # one worker starts the module's demo once (scripts/test)
    pytest.mark.asyncio(loop_scope="module"),
]
# The goal for a first visit: at most this many requests before the first frame.
MAX_REQUESTS_BEFORE_FIRST_FRAME = 12


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory, recordings: Recordings) -> AsyncIterator[LiveDemo]:
    # The bucket's pathway alone: every segment must come from the bucket (a fetch timing out on a loaded
    # machine would send the page to the VM, by design; steering: tests/test_steering_browser.py).
    async with live_demo(tmp_path_factory.mktemp("viewer"), recordings, WINDOW_SECONDS="8",
                         PATHWAYS="bucket") as running:
        yield running


async def test_viewer_plays_from_the_bucket_and_shows_offline_and_back(demo: LiveDemo,
                                                                     tmp_path: Path) -> None:
    await demo.owncast.wait_for_segments(0, 3, timeout=20)
    ARTIFACTS.mkdir(exist_ok=True)
    requests: list[str] = []
    async with shared_chromium(draw_video=True) as browser:  # screenshots, the first frame drawn
        page = await browser.new_page(viewport={"width": 1100, "height": 800})
        page.on("request", lambda r: requests.append(r.url))
        errors = page_errors(page)
        await open_viewer(page, f"{demo.service.url}/")
        stats = await watch(page, 5)
        await page.screenshot(path=str(ARTIFACTS / "viewer-playing.png"), full_page=True)

        s3_host = urlsplit(demo.s3.endpoint_url).netloc
        service_host = urlsplit(demo.service.url).netloc
        segments = [u for u in requests if u.endswith((".ts", ".m4s"))]
        assert segments and all(urlsplit(u).netloc == s3_host for u in segments), segments
        assert not [u for u in requests if urlsplit(u).netloc == service_host and u.endswith(".ts")]
        assert stats["segments"] >= 5 and stats["bytes"] > 0 and stats["originSegments"] == 0
        assert stats["segmentHosts"] == [s3_host] and stats["errors"] == []
        await page.get_by_role("button", name="Show stats").click()  # as a person would
        panel = await page.inner_text("body")
        assert s3_host in panel
        # In the viewer's words: no jargon, one latency figure and what it means, and the
        # downloads add up: all of it from the bucket here (no P2P), none from this server.
        assert not re.search(r"\bR2\b|\bHTTP\b|egress|optimization", panel), panel
        assert panel.count("Behind live") == 2 and "Behind live: how long ago" in panel, panel
        rows = await stat_rows(page)
        assert rows["Video downloaded"] == rows["From the storage bucket"].split(" · ")[0], rows
        assert rows["From the storage bucket"].endswith(" · 100 %"), rows
        assert "No video came from this server" in panel and not await page.is_visible("#sharing")
        await page.screenshot(path=str(ARTIFACTS / "viewer-stats.png"), full_page=True)

        # Owncast's broadcaster disconnects: offline clip + ENDLIST. The viewer says so.
        await demo.owncast.stop_stream(offline=True)
        await wait_for_state(page, "offline", 45_000, f"{demo.service.url}/live/0/playlist.m3u8")
        assert "offline" in (await page.inner_text("body")).lower()
        assert await page.inner_text("#s-state") == "offline"  # the stats panel agrees at once
        await page.screenshot(path=str(ARTIFACTS / "viewer-offline.png"), full_page=True)

        # ...and comes back as a new stream: the viewer plays again by itself.
        await demo.owncast.restart_stream()
        await wait_for_state(page, "playing", 45_000, f"{demo.service.url}/live/0/playlist.m3u8")
        final = await watch(page, 2)
        await page.screenshot(path=str(ARTIFACTS / "viewer-back.png"), full_page=True)

        # Phone width: nothing wider than the screen. Keyboard: the stats toggle works without a mouse.
        await page.set_viewport_size({"width": 360, "height": 740})
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(ARTIFACTS / "viewer-phone.png"), full_page=True)
        toggle = page.get_by_role("button", name="Hide stats")
        await toggle.focus()
        await page.keyboard.press("Enter")
        await page.get_by_role("button", name="Show stats").wait_for(timeout=5_000)
        assert await page.locator("#stats").is_hidden()
        assert final["originSegments"] == 0 and final["errors"] == []
    assert errors == [], errors
    shutil.copy(ARTIFACTS / "viewer-playing.png", tmp_path / "viewer-playing.png")


async def test_a_first_visit_starts_with_few_requests_and_no_redirect(demo: LiveDemo) -> None:
    """Counted by the browser up to the first frame (tests/support/startup.py), over a 150 ms round trip."""

    await demo.owncast.wait_for_segments(0, 3, timeout=20)
    async with shared_chromium(draw_video=True) as browser:  # the first frame drawn
        context = await browser.new_context()  # nothing cached, no connection open
        start = await first_visit(context, await context.new_page(), f"{demo.service.url}/")
    asked = [f"{f.started:.2f} {f.url}{' (redirected)' if f.redirected else ''}" for f in start.before]
    assert start.redirects() == [], asked
    # Counted up to the first segment's request (past it, a loaded machine lets hls.js fetch more before
    # the frame; bench/startup.py counts up to the first frame itself).
    assert len(start.to_first_segment()) <= MAX_REQUESTS_BEFORE_FIRST_FRAME, asked
    own = start.same_origin_files(demo.service.url)
    # The page, its stylesheet, hls.js, viewer.min.js (its modules in it) and the playlist are the first
    # five; config.json comes in the page, not on its own.
    assert own[0] == "/" and "/config.json" not in own, asked
    first = {p.split("?")[0] for p in own[1:5]}
    assert first == {"/viewer.min.css", "/hls.min.js", "/viewer.min.js", "/live/master.m3u8"}, asked
