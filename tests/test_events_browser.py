"""/live/events from the real service process (SeaweedFS + the Owncast emulator + `python -m broadcaster
run`): read with aiohttp and a real SSE parser, and shown by the viewer's stats panel in headless
Chromium."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import (needs_chromium, open_viewer, page_errors, shared_chromium, show_video,
                                   until_page)
from tests.support.service_process import ServiceProcess, service_env
from tests.support.sse import Event, SseReader

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
EVENTS = "/live/events"

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
async def service(tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> AsyncIterator[ServiceProcess]:
    env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", WINDOW_SECONDS="8")
    async with ServiceProcess(env, tmp_path) as proc:
        await owncast.wait_for_segments(0, 2, timeout=30)
        yield proc
        assert await proc.stop(timeout=15) == 0
        assert proc.problems() == []  # no ERROR or traceback, for clients leaving either


async def open_events(http: aiohttp.ClientSession, url: str, last_id: str | None = None) -> SseReader:
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    response = await http.get(url + EVENTS, headers=headers, timeout=aiohttp.ClientTimeout(total=None))
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    reader = SseReader(response)
    await reader.started()
    return reader


async def segment_events(reader: SseReader, n: int, timeout: float = 60) -> list[Event]:
    """The next n segment events (state events are skipped)."""
    got: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(got) < n:
            event = await reader.event(timeout)
            assert event.type in ("segment", "state"), event
            if event.type == "segment":
                got.append(event)
    return got


async def test_segment_events_from_the_real_service_point_at_the_bucket_and_resume_without_duplicates(
        service: ServiceProcess, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        witness = await open_events(http, service.url)  # stays connected throughout
        # A new dashboard first learns the current state (the stream is live: online or degraded).
        first = await witness.event(60)
        assert first.type == "state" and not first.id_field
        assert first.json()["state"] in ("online", "degraded"), first.json()

        dashboard = await open_events(http, service.url)
        seen = await segment_events(dashboard, 6)
        by_variant: dict[int, list[int]] = {}
        for event in seen:
            data = event.json()
            assert set(data) == {"variant", "media_sequence", "duration", "url"}
            assert 0 < data["duration"] <= 3
            by_variant.setdefault(data["variant"], []).append(data["media_sequence"])
            assert urlsplit(data["url"]).netloc == urlsplit(seaweed.public_url).netloc
            async with http.get(data["url"]) as segment:  # listed only once it is in the bucket
                assert segment.status == 200, data["url"]
                assert len(await segment.read()) > 0
        assert set(by_variant) == {0, 1}
        for sequences in by_variant.values():
            assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences), by_variant
        ids = [int(e.last_id) for e in seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        # The dashboard drops; the stream goes on; it comes back with its Last-Event-ID.
        last_id = dashboard.last_id
        dashboard.response.close()
        missed: list[Event] = []
        async with asyncio.timeout(60):
            while len([e for e in missed if int(e.last_id) > int(last_id)]) < 4:
                missed.append(await witness.event(60))
        resumed_reader = await open_events(http, service.url, last_id)
        expected = [e for e in missed if int(e.last_id) > int(last_id)]
        resumed = [await resumed_reader.event(60) for _ in expected]
        assert [(e.last_id, e.type, e.data) for e in resumed] == [(e.last_id, e.type, e.data) for e in expected]
        # ...and then carries on with exactly what the witness gets next.
        nxt = await witness.event(60)
        assert (await resumed_reader.event(60)).last_id == nxt.last_id

        # Owncast's broadcaster disconnects: the state goes offline.
        await owncast.stop_stream(offline=True)
        async with asyncio.timeout(60):
            while (event := await witness.event(60)).type != "state" or event.json()["state"] != "offline":
                assert event.type == "segment" or event.json()["state"] in ("online", "degraded"), event
        assert event.json() == {"state": "offline", "detail": "ended"}

        # SIGTERM with streams open stops the service at once and ends the streams cleanly: the hub
        # is closed before the web server's cleanup, which would otherwise wait on them for a minute.
        assert await service.stop(timeout=15) == 0
        await witness.ended(timeout=5)
        await resumed_reader.ended(timeout=5)


@needs_chromium
async def test_viewer_shows_server_events_only_while_the_stats_panel_is_open(
        service: ServiceProcess, tmp_path: Path) -> None:
    from playwright.async_api import Request

    ARTIFACTS.mkdir(exist_ok=True)
    event_requests: list[Request] = []
    ended: asyncio.Queue[str] = asyncio.Queue()
    async with shared_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("request", lambda r: event_requests.append(r) if urlsplit(r.url).path == EVENTS else None)
        for outcome in ("requestfailed", "requestfinished"):
            page.on(outcome, lambda r, o=outcome: ended.put_nowait(o) if urlsplit(r.url).path == EVENTS else None)
        errors = page_errors(page)
        await open_viewer(page, f"{service.url}/")
        # An ordinary viewer holds no event stream.
        assert event_requests == []
        assert await page.evaluate("() => window.viewerStats.eventStream") == "closed"

        await page.get_by_role("button", name="Show stats").click()
        await until_page(page, "() => window.viewerStats.eventStream === 'open'"
                               " && window.viewerStats.events >= 4")
        assert len(event_requests) == 1
        assert urlsplit(event_requests[0].url).netloc == urlsplit(service.url).netloc
        items = page.locator("#events li")
        await until_page(page, "() => document.querySelectorAll('#events li[data-type=segment]').length >= 3")
        text = await page.inner_text("#events")
        assert "variant 0" in text and "variant 1" in text and " s" in text
        assert await page.locator("#events li[data-type=state]").count() >= 1  # the current state first
        # Never more than the last ten.
        await until_page(page, "() => window.viewerStats.events > 12")
        assert await items.count() == 10
        await show_video(page)
        await page.screenshot(path=str(ARTIFACTS / "viewer-events.png"), full_page=True)

        # Closing the panel closes the stream.
        await page.get_by_role("button", name="Hide stats").click()
        await until_page(page, "() => window.viewerStats.eventStream === 'closed'", timeout=5)
        async with asyncio.timeout(10):
            await ended.get()
        count = await page.evaluate("() => window.viewerStats.events")
        # Reopening opens a new one, which counts on from where it was.
        await page.get_by_role("button", name="Show stats").click()
        await until_page(page, "n => window.viewerStats.events > n", count)
        assert len(event_requests) == 2
    assert errors == [], errors
