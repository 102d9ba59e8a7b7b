"""Clean stops: SIGTERM answers every held request and event stream at once, saves and exits 0; a second
signal while stopping exits at once, in one line (a FaultProxy makes the bucket hang)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from tests.support.fault_proxy import FaultProxy
from tests.support.listing import listing
from tests.support.raw_http import Response, responses
from tests.support.service_process import ServiceProcess, moto_env
from tests.support.waiting import until

pytestmark = [pytest.mark.faults, pytest.mark.integration]
HELD = 100


async def playlist(http: aiohttp.ClientSession, url: str, variant: int) -> str | None:
    async with http.get(f"{url}/live/{variant}/playlist.m3u8") as r:
        return await r.text() if r.status == 200 else None


def next_number(text: str) -> int:
    """The media sequence number of the segment after the last one listed."""
    return listing(text)[-1].number + 1


async def until_listed_and_frozen(http: aiohttp.ClientSession, url: str, owncast: OwncastEmulator) -> dict[int, int]:
    """Owncast's stream stopped (no ENDLIST), all it wrote listed: the next segment cannot come."""
    async def served() -> bool:
        return None not in [await playlist(http, url, v) for v in (0, 1)]

    async def all_listed() -> dict[int, int] | None:
        texts = {v: await playlist(http, url, v) for v in (0, 1)}
        if all(t is not None and owncast.listed_segments(v)[-1] in t for v, t in texts.items()):
            return {v: next_number(t) for v, t in texts.items() if t is not None}
        return None

    await until(served, "both playlists served", 30, every=0.1)
    await owncast.stop_stream(offline=False)
    frozen: dict[int, int] = await until(all_listed, "all Owncast wrote listed", 30, every=0.1)
    return frozen


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def send(port: int, path: str) -> Connection:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def answer(connection: Connection) -> Response:
    """The one answer, read until the server closes the connection."""
    reader, writer = connection
    try:
        [got] = responses(await reader.read())
    finally:
        writer.close()
    return got


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # One connection per held request, as many players would have.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def test_sigterm_answers_held_requests_and_event_streams_at_once(
    tmp_path: Path, moto_url: str, owncast: OwncastEmulator, http: aiohttp.ClientSession
) -> None:
    # A 30 s target duration: a held request would otherwise wait up to 90 s (3 target durations),
    # far past the 20 s this test gives the whole stop.
    env = moto_env(moto_url, tmp_path, HLS_DIR=str(owncast.variant_dir(0).parent), TARGET_DURATION="30")
    async with ServiceProcess(env, tmp_path) as service:
        following = await until_listed_and_frozen(http, service.url, owncast)

        port = int(service.url.rsplit(":", 1)[1])
        # Raw connections, each open and its request sent before the next step: what happens next
        # cannot overtake them.
        held = [await send(port, f"/live/{i % 2}/playlist.m3u8?_HLS_msn={following[i % 2]}") for i in range(HELD)]
        streams = [await send(port, "/live/events") for _ in range(5)]
        # A request on a connection opened after all of them is answered only once the server has
        # accepted theirs (the kernel queues connections in order) and read their requests.
        async with http.get(f"{service.url}/health"):
            pass

        assert service.proc is not None
        service.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            answers = await asyncio.gather(*(answer(r) for r in held))
            ended = await asyncio.gather(*(answer(r) for r in streams))
        # Answered with the playlist as it is (not a 503 a player might count as an error), which no
        # cache may keep as the answer to "_HLS_msn=N": it does not list N.
        for i, got in enumerate(answers):
            assert got.status == 200 and got.headers["cache-control"] == "no-cache", got
            assert got.body.startswith(b"#EXTM3U")
            assert next_number(got.body.decode()) == following[i % 2]  # N is not in it: answered by the stop
        assert all(got.status == 200 for got in ended)  # and each event stream ended
        assert await service.exited() == 0
        assert not service.problems(), service.problems()


async def test_a_second_signal_while_stopping_exits_at_once(
        tmp_path: Path, moto_url: str, owncast: OwncastEmulator, http: aiohttp.ClientSession) -> None:
    async with FaultProxy(moto_url) as proxy:
        env = moto_env(moto_url, tmp_path, HLS_DIR=str(owncast.variant_dir(0).parent), S3_ENDPOINT_URL=proxy.url)
        async with ServiceProcess(env, tmp_path) as service:
            await until(lambda: playlist(http, service.url, 0), "a playlist served", 30, every=0.1)
            await proxy.set_mode("hang")  # uploads now never finish: the stop waits its 5 s for them
            await until(lambda: proxy.seen("hang", "PUT"), "a PUT held by the proxy", 30, every=0.1)
            assert service.proc is not None
            service.proc.send_signal(signal.SIGTERM)
            await until(lambda: any(line.endswith("stopping") for line in service.lines),
                        "the service logging stopping", 20, every=0.01)
            service.proc.send_signal(signal.SIGINT)
            assert await service.exited() == 128 + signal.SIGINT
            after = service.lines[next(i for i, line in enumerate(service.lines) if line.endswith("stopping")) + 1:]
            assert len(after) == 1 and "SIGINT again while stopping" in after[0], after
            assert not [line for line in service.lines if "Traceback" in line]
