"""Blocking playlist reload (LL-HLS 6.2.5.2) through the real app, with a real Publisher behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from broadcaster.http import PlaylistOptions, Running, create_app
from broadcaster.http.clients import CF_CONNECTING_IP, Proxies, client_address
from broadcaster.metrics import ConnectionMetrics
from tests.support.client import Client
from tests.support.local_http import Served
from tests.support.served import MakeWorld, ServeWorld
from tests.support.waiting import WAIT, until
from tests.support.world import World


@pytest.fixture
async def served(serve_world: ServeWorld) -> tuple[World, Client]:
    world, client = await serve_world(can_block_reload=True)
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    return world, client


def last(world: World) -> int:
    rendered = world.playlists.media_playlist(0)
    assert rendered is not None
    return rendered.last_sequence


async def test_playlist_advertises_blocking_with_hold_back(served: tuple[World, Client]) -> None:
    _, client = served
    r = await client.get("/live/playlist.m3u8")
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.0" in await r.text()


async def test_request_for_a_listed_segment_answers_at_once(served: tuple[World, Client]) -> None:
    world, client = served
    async with asyncio.timeout(1):
        r = await client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world)}")
    assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=6"


async def test_request_for_the_next_segment_is_held_until_it_is_listed(served: tuple[World, Client]) -> None:
    world, client = served
    n = last(world) + 1
    request = asyncio.ensure_future(client.get(f"/live/0/playlist.m3u8?_HLS_msn={n}"))
    await until(lambda: world.playlists.held_requests == 1, "the request held at the server")
    assert not request.done()
    world.owncast_lists(0, "stream-a-2.ts")
    async with asyncio.timeout(5):
        r = await request
    assert r.status == 200 and "stream-a-2.ts" in await r.text()


@pytest.mark.parametrize("skip", ["", "&_HLS_skip=YES"])
async def test_a_number_added_after_a_redirects_own_is_the_one_asked(served: tuple[World, Client],
                                                                     skip: str) -> None:
    """Shaka 4.16 keeps a redirect's URL and adds its next directives after the ones there
    (`?_HLS_msn=<old>&_HLS_msn=<next>`): the last is what it asks for, held until listed."""
    world, client = served
    old, n = last(world) - 1, last(world) + 1
    r = await client.get(f"/live/0/playlist.m3u8?_HLS_msn={old}{skip}&_HLS_msn={n}{skip}", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == f"playlist.m3u8?_HLS_msn={n}{skip}", r.headers
    request = asyncio.ensure_future(client.get(f"/live/0/{r.headers['Location']}"))
    await until(lambda: world.playlists.held_requests == 1, "the request held at the server")
    world.owncast_lists(0, "stream-a-2.ts")
    async with asyncio.timeout(5):
        answer = await request
    assert answer.status == 200 and "stream-a-2.ts" in await answer.text()


@pytest.mark.parametrize("query", ["_HLS_part=1", "_HLS_msn=abc", "_HLS_msn=-1", "_HLS_msn=1&_HLS_part=x"])
async def test_malformed_requests_are_400(served: tuple[World, Client], query: str) -> None:
    _, client = served
    r = await client.get(f"/live/0/playlist.m3u8?{query}")
    assert r.status == 400


async def test_too_far_ahead_is_400(served: tuple[World, Client]) -> None:
    world, client = served
    assert (await client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 3}")).status == 400
    request = asyncio.ensure_future(client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 2}"))
    await until(lambda: world.playlists.held_requests == 1, "two ahead held")  # allowed: held, not 400
    assert not request.done()
    request.cancel()


async def test_held_past_three_target_durations_is_503(served: tuple[World, Client],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    world, client = served
    monkeypatch.setattr("broadcaster.playlist.hls.BLOCK_TIMEOUT_TARGET_DURATIONS", 0.1)  # 0.1 s instead of 3 s
    r = await client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 1}")
    assert r.status == 503 and r.headers["Retry-After"] == "1"


async def test_parameters_are_ignored_after_endlist(served: tuple[World, Client]) -> None:
    world, client = served
    world.owncast_lists(0, "offline.ts", ended=True, duration=8.0, discontinuity_before="offline.ts")
    await world.settle()
    async with asyncio.timeout(1):
        r = await client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 2}")
    assert r.status == 200 and (await r.text()).endswith("#EXT-X-ENDLIST\n")


async def test_with_blocking_reload_off_the_parameters_are_ignored(serve_world: ServeWorld) -> None:
    world, client = await serve_world(app=dict(playlist_options=PlaylistOptions(blocking_reload=False)))
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    plain = await (await client.get("/live/0/playlist.m3u8")).text()
    assert "CAN-BLOCK-RELOAD" not in plain
    async with asyncio.timeout(1):  # answered at once, not held for the next segment
        for query in (f"_HLS_msn={last(world) + 1}", "_HLS_part=1", "_HLS_skip=YES"):
            r = await client.get(f"/live/0/playlist.m3u8?{query}")
            assert r.status == 200 and await r.text() == plain, query


# -- requests nobody waits for ----------------------------------------------------------------------


@dataclass
class Runner:
    """The app on a real listener, run as the service runs it (handler_cancellation: support/local_http)."""

    world: World
    url: str
    registry: CollectorRegistry

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def held(self) -> float:
        return self.registry.get_sample_value("hls_broadcaster_connections_open", {"kind": "held"}) or 0.0

    def rejected(self, reason: str) -> float:
        return self.registry.get_sample_value("hls_broadcaster_connections_rejected_total", {"reason": reason}) or 0.0


@pytest.fixture
async def running(make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runner]:
    world = make_world(can_block_reload=True)
    registry = CollectorRegistry()
    app = create_app(world.playlists, world.report, world.metrics, playlist_options=PlaylistOptions(max_held=16),
                     running=Running(connection_metrics=ConnectionMetrics(registry)))
    # A held request waits up to 30 s, far longer than the test takes.
    monkeypatch.setattr("broadcaster.playlist.hls.BLOCK_TIMEOUT_TARGET_DURATIONS", 30)
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    async with Served(app, cancel_handlers=True) as served:
        yield Runner(world, served.url, registry)


async def hit_and_run(port: int, path: str) -> None:
    """Sends one request and hangs up at once, as a flood of them does."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    writer.close()
    await writer.wait_closed()


async def test_a_hit_and_run_flood_leaves_real_viewers_their_held_requests(running: Runner) -> None:
    world = running.world
    n = last(world) + 1
    async with aiohttp.ClientSession() as http:
        viewers = [asyncio.ensure_future(http.get(f"{running.url}/live/0/playlist.m3u8?_HLS_msn={n}"))
                   for _ in range(3)]
        await until(lambda: running.held == 3, "the viewers' requests held")
        # Far more than the cap of 16, each for the segment after next (a cache buster would only buy a
        # redirect to this canonical URL): hanging up at once (gone before the handler runs) ...
        for batch in range(10):
            await asyncio.gather(*(hit_and_run(running.port, f"/live/0/playlist.m3u8?_HLS_msn={n + 1}")
                                   for i in range(20)))
        await until(lambda: running.held == 3, "the flood's slots given back")
        # ... and once held: every slot the viewers leave is taken, then the flood hangs up.
        for batch in range(5):
            flood = [await asyncio.open_connection("127.0.0.1", running.port) for _ in range(13)]
            for i, (_, writer) in enumerate(flood):
                writer.write(f"GET /live/0/playlist.m3u8?_HLS_msn={n + 1} HTTP/1.1\r\n"
                             "Host: x\r\n\r\n".encode())
            await until(lambda: running.held == 16, "the cap full")
            for _, writer in flood:
                writer.close()
            await until(lambda: running.held == 3, "the held flood's slots given back")
        # Room for a newcomer: held, not refused.
        late = asyncio.ensure_future(http.get(f"{running.url}/live/0/playlist.m3u8?_HLS_msn={n}"))
        await until(lambda: running.held == 4, "a new viewer held")
        world.owncast_lists(0, "stream-a-2.ts")
        for request in [*viewers, late]:
            async with asyncio.timeout(WAIT):
                response = await request
            assert response.status == 200 and "stream-a-2.ts" in await response.text()
            response.release()
    assert running.rejected("held") == 0 and running.held == 0


async def test_one_address_cannot_take_the_whole_held_cap(serve_world: ServeWorld,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind the tunnel every request comes from cloudflared: with TRUST_CF_CONNECTING_IP the cap counts
    Cloudflare's CF-Connecting-IP, and one address holds at most an eighth of it (at least 2)."""
    registry = CollectorRegistry()
    world, client = await serve_world(can_block_reload=True, app=dict(
        running=Running(connection_metrics=ConnectionMetrics(registry)),
        playlist_options=PlaylistOptions(max_held=32, trust_cf_connecting_ip=True)))
    monkeypatch.setattr("broadcaster.playlist.hls.BLOCK_TIMEOUT_TARGET_DURATIONS", 30)
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    path = f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 1}"
    one = {CF_CONNECTING_IP: "203.0.113.7"}
    held = [asyncio.ensure_future(client.get(path, headers=one)) for _ in range(4)]
    await until(lambda: world.playlists.held_requests == 4, "four held for one address")
    refused = await client.get(path, headers=one)
    assert refused.status == 503 and refused.headers["Retry-After"] == "1"
    assert registry.get_sample_value("hls_broadcaster_connections_rejected_total",
                                     {"reason": "held_per_client"}) == 1
    # Others are held as before: another address, one in the same IPv6 /64 counted once.
    other = [asyncio.ensure_future(client.get(path, headers={CF_CONNECTING_IP: address}))
             for address in ("198.51.100.1", "2001:db8:1:2::1", "2001:db8:1:2::2")]
    await until(lambda: world.playlists.held_requests == 7, "other addresses held")
    world.owncast_lists(0, "stream-a-2.ts")
    for request in held + other:
        async with asyncio.timeout(WAIT):
            assert (await request).status == 200


@pytest.mark.parametrize("trust", [True, False])
def test_client_address(trust: bool) -> None:
    def address(remote: str, header: str | None = None) -> str | None:
        headers = {CF_CONNECTING_IP: header} if header is not None else {}
        return client_address(make_mocked_request("GET", "/", headers=headers,
                                                  transport=_Peer(remote)), Proxies(cloudflare=trust))

    assert address("192.0.2.1") == "192.0.2.1"  # a direct client: its own address
    assert address("::ffff:192.0.2.1") == "192.0.2.1"
    assert address("2001:db8::5") == "2001:db8::/64"
    if trust:
        assert address("127.0.0.1", "203.0.113.7") == "203.0.113.7"
        assert address("127.0.0.1", " 2001:db8:0:1::9 ") == "2001:db8:0:1::/64"
        assert address("127.0.0.1", "junk") is None
        assert address("127.0.0.1") == "127.0.0.1"  # trusted: the tunnel itself, when it sends no header
    else:
        # The tunnel, or anything local, speaks for every viewer: no per-address cap, and no header believed.
        assert address("127.0.0.1", "203.0.113.7") is None and address("::1") is None
        assert address("192.0.2.1", "203.0.113.7") == "192.0.2.1"


class _Peer:
    def __init__(self, host: str) -> None:
        self._host = host

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self._host, 1234) if name == "peername" else default


@pytest.mark.parametrize("suffix", ["?cachebust=1712", "?"])
async def test_a_stray_question_mark_after_the_number_is_read_as_owncast_sends_it(
        served: tuple[World, Client], suffix: str) -> None:
    world, client = served
    async with asyncio.timeout(1):
        r = await client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world)}{suffix}")
    assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=6"
    assert (await client.get(f"/live/0/playlist.m3u8?_HLS_msn=x{suffix}")).status == 400
