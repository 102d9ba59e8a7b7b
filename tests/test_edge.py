"""PUBLISH_PLAYLISTS: the playlists in the bucket, read as a CDN viewer reads them (SeaweedFS, the
emulator, the service; ffmpeg and hls.js reading the bucket's playlists with no request to the service)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import launch_chromium, needs_chromium, open_viewer, watch
from tests.support.hls_checker import VariantSetChecker, check_master
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until

pytestmark = pytest.mark.integration


@dataclass
class Edge:
    s3: SeaweedS3
    owncast: OwncastEmulator
    service: ServiceProcess

    @property
    def master_url(self) -> str:
        return f"{self.s3.public_url}/live/master.m3u8"


@pytest.fixture
async def edge(tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3) -> AsyncIterator[Edge]:
    async with OwncastEmulator(tmp_path / "hls", resolve_settings(segment_seconds=1), recordings=recordings) as owncast:
        env = service_env(tmp_path / "hls", seaweed, tmp_path / "state", WINDOW_SECONDS="6", PUBLISH_PLAYLISTS="true")
        async with ServiceProcess(env, tmp_path / "service") as service:
            yield Edge(seaweed, owncast, service)


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url, headers={"Origin": "https://viewer.example"}) as r:
        return r.status, dict(r.headers), await r.read()


async def test_bucket_playlists_name_only_stored_segments_and_never_block(edge: Edge) -> None:
    checker = VariantSetChecker()
    versions: dict[str, set[bytes]] = {"0": set(), "1": set()}
    async with aiohttp.ClientSession() as http:
        async def six_versions_each() -> bool:
            """Every version read is checked; True once each variant showed six."""
            status, headers, body = await fetch(http, edge.master_url)
            if status != 200:  # not written yet
                return False
            assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
            assert check_master(body.decode()) == []
            for variant in versions:
                url = urljoin(edge.master_url, f"{variant}/playlist.m3u8")
                assert f"{variant}/playlist.m3u8" in body.decode()
                status, headers, text = await fetch(http, url)
                assert status == 200, url
                assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
                assert headers["Cache-Control"] == "public, max-age=1"  # half of 1 s, at least 1 s
                assert headers.get("Access-Control-Allow-Origin")  # the bucket's CORS rule
                playlist = text.decode()
                assert "#EXT-X-SERVER-CONTROL" not in playlist  # a bucket cannot block
                checker.assert_ok(variant, playlist)
                if text not in versions[variant]:
                    versions[variant].add(text)
                    # The newest segment it names is already there (segment first, then playlist).
                    newest = [line for line in playlist.splitlines() if line and not line.startswith("#")][-1]
                    seg_status, seg_headers, _ = await fetch(http, newest)
                    assert seg_status == 200 and seg_headers["Content-Type"] == "video/mp2t", newest
            return min(len(v) for v in versions.values()) >= 6

        await until(six_versions_each, "six versions of each variant's playlist in the bucket", 40, every=0.2,
                    detail=lambda: {variant: len(seen) for variant, seen in versions.items()})
        # The service's own playlist is the same version plus SERVER-CONTROL.
        async with http.get(f"{edge.service.url}/live/0/playlist.m3u8") as r:
            assert "CAN-BLOCK-RELOAD=YES" in await r.text()
        async with http.get(f"{edge.service.url}/health") as r:
            assert r.status == 200, await r.text()


async def test_ffmpeg_reads_the_stream_from_the_bucket_alone(edge: Edge) -> None:
    await edge.owncast.wait_for_segments(0, 3, timeout=20)
    async with aiohttp.ClientSession() as http:
        async def written() -> bool:
            return (await fetch(http, edge.master_url))[0] == 200

        await until(written, "the multivariant playlist in the bucket", 20, every=0.1)
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-hide_banner", "-loglevel", "warning", "-i", edge.master_url, "-map", "0",
        "-c", "copy", "-t", "3", "-f", "null", "-",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "expired from playlists" not in err.decode() and "Media sequence changed" not in err.decode()


@pytest.mark.browser
@needs_chromium
async def test_hlsjs_plays_from_the_bucket_with_no_playlist_request_to_the_service(edge: Edge) -> None:
    from playwright.async_api import async_playwright

    await edge.owncast.wait_for_segments(0, 3, timeout=20)
    requests: list[str] = []
    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            await open_viewer(page, f"{edge.service.url}/")  # the viewer learns the bucket's master from the service
            stats = await watch(page, 4)
        finally:
            await browser.close()
    s3_host = urlsplit(edge.s3.public_url).netloc
    service_host = urlsplit(edge.service.url).netloc
    playlists = [u for u in requests if ".m3u8" in u]
    assert len(playlists) >= 4 and all(urlsplit(u).netloc == s3_host for u in playlists), playlists
    assert not [u for u in requests if urlsplit(u).netloc == service_host and ".m3u8" in u]
    assert not [u for u in playlists if "_HLS_" in u]  # nothing advertised blocking reload
    assert stats["errors"] == [] and stats["originSegments"] == 0
