"""Owncast's own page, unchanged, plays from the bucket through nginx routing as cloudflared.yml.example's
layout B does: every segment from the S3 server, no playlist or segment request to Owncast's server."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.browser import needs_chromium, shared_chromium, until_page, until_served
from tests.support.service_process import ServiceProcess, service_env
from tests.support.nginx import Nginx, needs_nginx, tunnel_locations
from tests.support.owncast_web import OwncastWeb
from tests.support.independent_players import SEGMENT_SUFFIXES
from tests.support.tunnel import OWNCAST, OWNCAST_HOST, SERVICE, tunnel_rules


pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium, needs_nginx]


# A window of nine target durations offers delta updates once it slides: the page plays 16 s taking them.
@pytest.mark.parametrize(("window", "seconds", "deltas"), [("8", 5, False), ("9", 16, True)],
                         ids=["no-delta-updates", "delta-updates"])
async def test_owncasts_page_plays_from_the_bucket_through_the_same_hostname_tunnel(
        tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3, window: str, seconds: float, deltas: bool) -> None:
    hls_dir = tmp_path / "hls"
    hls_dir.mkdir()
    # The bucket's pathway alone: the claim is every segment from the bucket.
    env = service_env(hls_dir, seaweed, tmp_path / "state", WINDOW_SECONDS=window, PATHWAYS="bucket")
    async with ServiceProcess(env, tmp_path / "service") as service, OwncastWeb(hls_dir) as owncast:
        routes = {SERVICE: service.url, OWNCAST: owncast.url}
        locations = tunnel_locations(tunnel_rules(), OWNCAST_HOST, routes)
        # Owncast streams once everything is up: the service started first, as under systemd.
        async with Nginx(tmp_path / "tunnel", locations) as tunnel, \
                OwncastEmulator(hls_dir, resolve_settings(segment_seconds=1), recordings=recordings):
            master = await until_served(f"{tunnel.url}/hls/stream.m3u8")  # fetched through the tunnel
            assert "0/stream.m3u8" in master and "playlist.m3u8" not in master
            requests, responses, errors, skipped = await play(tunnel.url, seconds=seconds)
            s3_host = urlsplit(seaweed.endpoint_url).netloc
            tunnel_host = urlsplit(tunnel.url).netloc
            service_addr = urlsplit(service.url).netloc
            segments = [u for u in requests if urlsplit(u).path.endswith(SEGMENT_SUFFIXES)]
            playlists = [u for u in requests if urlsplit(u).path.endswith(".m3u8")]
            assert len(segments) >= 5, requests
            assert {urlsplit(u).netloc for u in segments} == {s3_host}, segments
            assert playlists and {urlsplit(u).netloc for u in playlists} == {tunnel_host}, playlists
            assert {urlsplit(u).path for u in playlists} <= {"/hls/stream.m3u8", "/hls/0/stream.m3u8",
                                                              "/hls/1/stream.m3u8"}, playlists
            # Every playlist answer a plain 200, one round trip (VHS's order of directives too).
            answered = [(url, status) for url, status in responses if url in playlists]
            statuses = [status for _, status in answered]
            counts = f"{statuses.count(200)} of {len(statuses)} playlist answers 200"
            assert [a for a in answered if a[1] != 200] == [], counts
            assert statuses.count(200) >= 5, answered
            print(f"\nOwncast's page ({window} s window): {counts}")
            # The tunnel sent every playlist request to the service, and Owncast saw only its page.
            routed = [line.split() for line in tunnel.access_log()]
            assert routed and all(upstream == service_addr for _, uri, _, upstream, _ in routed
                                  if uri.startswith("/hls/")), routed
            assert owncast.hls_requests() == []
            pages = {r.split(" ", 1)[1] for r in owncast.requests}
            assert "/" in pages and pages <= {"/", "/videojs/video.min.js", "/videojs/video-js.min.css",
                                              "/favicon.ico", "/api/status"}, owncast.requests
            assert errors == [], errors
            assert service.problems() == []
            assert bool(skipped) == deltas, skipped  # delta updates taken, and played through


async def play(origin: str, seconds: float) -> tuple[list[str], list[tuple[str, int]], list[str], list[str]]:
    """The Owncast page through the tunnel for `seconds`: its requests, statuses, errors and delta updates."""

    requests: list[str] = []
    responses: list[tuple[str, int]] = []
    errors: list[str] = []
    skipped: list[str] = []

    async def keep_skips(response: Any) -> None:
        if "_HLS_skip=YES" in response.url and response.status == 200:
            body = (await response.body()).decode()
            skipped.extend(line for line in body.splitlines() if line.startswith("#EXT-X-SKIP:"))

    async with shared_chromium() as browser:
        page: Any = await browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("response", lambda r: responses.append((r.url, r.status)))
        page.on("response", keep_skips)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{origin}/")
        # VHS plays it (not the browser's own HLS), and the clock moves.
        await until_page(page, "() => player.tech(true).vhs && player.currentTime() > 0")
        start = await page.evaluate("() => player.currentTime()")
        await until_page(page, "t => player.currentTime() >= t", start + seconds)
        errors += await page.evaluate("() => window.playerErrors")
    return requests, responses, errors, skipped
