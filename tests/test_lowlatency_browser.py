"""hls.js in Chromium uses blocking reload and delta updates and plays through them with no error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import needs_chromium, open_viewer, shared_chromium, until_served, watch
from tests.support.service_process import ServiceProcess, service_env

pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium]


TARGET = 1  # the emulator's segments, and so the playlists' target duration, in seconds


@pytest.fixture
async def service(tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3) -> AsyncIterator[ServiceProcess]:
    async with OwncastEmulator(tmp_path / "hls", resolve_settings(segment_seconds=TARGET), recordings=recordings):
        # The bucket's pathway alone: the claim is no segment from this server (originSegments == 0).
        env = service_env(tmp_path / "hls", seaweed, tmp_path / "state", WINDOW_SECONDS="9",  # >= 9 targets
                          PATHWAYS="bucket")
        async with ServiceProcess(env, tmp_path / "service") as svc:
            yield svc


async def test_hlsjs_blocks_on_the_next_segment_and_takes_delta_updates(service: ServiceProcess) -> None:
    playlist_requests: list[str] = []
    # Every playlist answer, how long the browser waited for it and, for a 503, its text.
    statuses: list[tuple[str, int, float, str]] = []
    answers: dict[str, bytes] = {}
    async with shared_chromium() as browser:
        page = await browser.new_page()
        page.on("request", lambda r: playlist_requests.append(r.url) if "/playlist.m3u8" in r.url else None)

        async def keep(response: Any) -> None:
            url, status = response.url, response.status
            if ".m3u8" not in url:
                return
            waited = response.request.timing["responseStart"] / 1000  # ms after the request started
            statuses.append((url, status, waited, await response.text() if status == 503 else ""))
            if "_HLS_skip" in url and status == 200:
                answers[url] = await response.body()

        page.on("response", keep)
        await until_served(f"{service.url}/live/master.m3u8")  # no 503 "not ready" before the stream is listed
        await open_viewer(page, f"{service.url}/")
        # Past the window's length: deltas are offered once the window slides (9 s listed).
        stats = await watch(page, 12, timeout_ms=40_000)
    queries = [parse_qs(urlsplit(u).query) for u in playlist_requests]
    blocking = [q for q in queries if "_HLS_msn" in q]
    assert len(blocking) >= 5, playlist_requests
    assert [q for q in blocking if q.get("_HLS_skip") == ["YES"]], playlist_requests
    assert any(b"#EXT-X-SKIP:SKIPPED-SEGMENTS=" in body for body in answers.values())
    assert stats["errors"] == [] and stats["originSegments"] == 0
    # A plain 200 each, but for the 503 of a request held three target durations (never sooner).
    late = [a for a in statuses if a[1] == 503 and "_HLS_msn" in a[0] and a[2] >= 3 * TARGET - 0.1
            and a[3] == "the stream is not advancing\n"]
    assert [a for a in statuses if a[1] != 200 and a not in late] == [], f"{len(statuses)} playlist answers"
