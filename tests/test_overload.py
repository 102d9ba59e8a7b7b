"""One client cannot exhaust the service's file handles: the real service under a low open-file limit,
one client opening more event streams, held requests and idle or half-sent connections than their caps.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import Ledger, OwncastEmulator, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.scrape import by_label, scraped, total
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until
from tests.support.whole import assert_whole

pytestmark = [pytest.mark.integration, pytest.mark.faults]

NOFILE = 384
HEADER_TIMEOUT = "1"  # seconds: small, so the test sees half-sent connections closed


@pytest.fixture
async def stream(tmp_path: Path, recordings: Recordings) -> AsyncIterator[OwncastEmulator]:
    # 2 s segments: a request held for the second-next segment stays held while the test fills the cap.
    async with OwncastEmulator(tmp_path / "hls", resolve_settings(segment_seconds=2),
                               ledger=Ledger(), recordings=recordings) as emulator:
        yield emulator


async def head_of(reader: asyncio.StreamReader) -> bytes:
    """The answer's head; b"" when the service closed the connection without one."""
    async with asyncio.timeout(10):
        try:
            return await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as err:
            return err.partial


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Closed without an answer (idle, or half-sent for HEADER_TIMEOUT), or answered 503 at accept."""
    try:
        async with asyncio.timeout(15):
            data = await reader.read()
    except ConnectionResetError:
        return True
    return data == b"" or (data.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: " in data)


async def test_one_client_past_every_cap_gets_503s_and_the_stream_goes_on(
        tmp_path: Path, seaweed: SeaweedS3, stream: OwncastEmulator) -> None:
    env = service_env(stream.hls_dir, seaweed, tmp_path / "state", HEADER_TIMEOUT=HEADER_TIMEOUT)
    clients: list[asyncio.StreamWriter] = []

    async def connect(request: bytes) -> asyncio.StreamReader:
        reader, writer = await asyncio.open_connection(host, port)
        clients.append(writer)
        if request:
            writer.write(request)
        return reader

    async with ServiceProcess(env, tmp_path / "svc", nofile=NOFILE) as service, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        host, port = service.url.removeprefix("http://").rsplit(":", 1)
        try:
            async def two_listed() -> bool:
                async with http.get(f"{service.url}/live/0/playlist.m3u8") as r:
                    return r.status == 200 and (await r.text()).count("#EXTINF") >= 2

            await until(two_listed, "the stream listed", 30, every=0.1)
            samples = await scraped(http, service.url)
            n_conn, n_events, n_held = (int(total(samples, "hls_broadcaster_connections_limit", kind=kind))
                                        for kind in ("connections", "events", "held"))
            assert min(n_conn, n_events, n_held) > 0, "no connection limits in /metrics"
            assert n_events + n_held < n_conn < NOFILE
            written: set[str] = set(stream.listed_segments(0))

            # Event streams: the cap, plus 3.
            streams = [await connect(b"GET /live/events HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(n_events + 3)]
            heads = [await head_of(r) for r in streams]
            ok = [h for h in heads if h.startswith(b"HTTP/1.1 200 ")]
            busy = [h for h in heads if h.startswith(b"HTTP/1.1 503 ")]
            # A stream closed with no answer: its /metrics (why) goes with the failure.
            if not (len(ok) == n_events and len(busy) == 3):
                said = by_label(
                    await scraped(http, service.url), "hls_broadcaster_connections_rejected_total", "reason")
                pytest.fail("\n".join([str([h.split(b"\r\n")[0] for h in heads]), f"rejected: {said}"]))
            assert all(b"\r\nRetry-After: " in h for h in busy)

            # Held blocking requests for the second-next segment: the cap, plus 3.
            async with http.get(f"{service.url}/live/0/playlist.m3u8") as r:
                body = await r.text()
            first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", body).group(1))  # type: ignore[union-attr]
            msn = first + body.count("#EXTINF") + 1
            held_request = f"GET /live/0/playlist.m3u8?_HLS_msn={msn} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            held = [await connect(held_request) for _ in range(n_held + 3)]
            async with asyncio.timeout(10):  # the ones past the cap are answered at once
                refused = await asyncio.wait_for(head_of(held[-1]), 10)
            assert refused.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: " in refused
            written |= set(stream.listed_segments(0))

            # Idle and half-sent connections: more than the connection cap, more than the open-file limit.
            idle = [await connect(b"") for _ in range(NOFILE // 2 + 10)]
            half = [await connect(b"GET /health HTTP/1.1\r\nHost: x\r\n") for _ in range(NOFILE // 2 + 10)]

            # /health and plain playlists still answer, on new connections.
            for path in ("/health", "/live/0/playlist.m3u8", "/live/master.m3u8", "/metrics"):
                async with asyncio.timeout(10), http.get(service.url + path) as r:
                    assert r.status == 200, (path, r.status, await r.text())
            samples = await scraped(http, service.url)
            assert total(samples, "hls_broadcaster_connections_rejected_total", reason="events") >= 3
            assert total(samples, "hls_broadcaster_connections_rejected_total", reason="held") >= 1

            # Idle and half-sent connections are let go: at the cap to make room, or after HEADER_TIMEOUT.
            for reader in idle + half:
                assert await closed_by_server(reader)
            samples = await scraped(http, service.url)
            assert total(samples, "hls_broadcaster_connections_rejected_total", reason="header_timeout") >= 1
            written |= set(stream.listed_segments(0))

            # Every segment Owncast listed meanwhile is listed by the service: none missed.
            newest = stream.listed_segments(0)[-1]
            async def listing_newest() -> str | None:
                async with http.get(f"{service.url}/live/0/playlist.m3u8") as r:
                    text = await r.text()
                return text if newest in text else None

            served: str = await until(listing_newest, f"{newest} listed by the service", 20, every=0.2)
            listed = {line.rsplit("/", 1)[-1] for line in served.splitlines() if line and not line.startswith("#")}
            assert written <= listed, sorted(written - listed)
            # ...each, in the bucket, the file Owncast finished writing.
            urls = [line for line in served.splitlines() if line.startswith("http")]
            await assert_whole(http, stream.ledger, [(u, stream.variant_dir(0) / u.rsplit("/", 1)[-1])
                                                     for u in urls])
            assert total(await scraped(http, service.url), "hls_broadcaster_segments_lost_total", variant="0",
                         reason="deleted") == 0
        finally:
            for writer in clients:
                writer.close()
            await asyncio.gather(*(w.wait_closed() for w in clients), return_exceptions=True)
        assert await service.stop() == 0
    assert service.problems() == [], "\n".join(service.problems()[:20])
    # The budget was said at start-up, and that it is tight, naming the setting to raise.
    assert any(f"file handles: limit {NOFILE} (hard {NOFILE})" in line for line in service.lines)
    assert any(" WARNING " in line and "LimitNOFILE" in line for line in service.lines)
    assert sum(len(line) + 1 for line in service.lines) < 20_000, "\n".join(service.lines[-20:])
