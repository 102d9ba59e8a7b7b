"""Blocking playlist reload (LL-HLS 6.2.5.2) through the real app, with a real Publisher behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from broadcaster.http import create_app
from tests.support.client import Client
from tests.support.world import World


@pytest.fixture
async def served(tmp_path: Path, aiohttp_client: AiohttpClient) -> AsyncIterator[tuple[World, Client]]:
    world = World(tmp_path)
    world.pub._can_block = True
    client = await aiohttp_client(create_app(world.playlists, world.report, world.metrics))
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    yield world, client
    await world.pub.close()


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
    await asyncio.sleep(0.05)  # let it reach the server and wait there
    assert not request.done()
    world.owncast_lists(0, "stream-a-2.ts")
    async with asyncio.timeout(5):
        r = await request
    assert r.status == 200 and "stream-a-2.ts" in await r.text()


@pytest.mark.parametrize("query", ["_HLS_part=1", "_HLS_msn=abc", "_HLS_msn=-1", "_HLS_msn=1&_HLS_part=x"])
async def test_malformed_requests_are_400(served: tuple[World, Client], query: str) -> None:
    _, client = served
    r = await client.get(f"/live/0/playlist.m3u8?{query}")
    assert r.status == 400


async def test_too_far_ahead_is_400(served: tuple[World, Client]) -> None:
    world, client = served
    assert (await client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 3}")).status == 400
    request = asyncio.ensure_future(client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 2}"))
    await asyncio.sleep(0.05)
    assert not request.done()  # two ahead is allowed: held
    request.cancel()


async def test_held_past_three_target_durations_is_503(served: tuple[World, Client],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    world, client = served
    monkeypatch.setattr("broadcaster.hls.BLOCK_TIMEOUT_TARGET_DURATIONS", 0.1)  # 0.1 s instead of 3 s
    r = await client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 1}")
    assert r.status == 503 and r.headers["Retry-After"] == "1"


async def test_parameters_are_ignored_after_endlist(served: tuple[World, Client]) -> None:
    world, client = served
    world.owncast_lists(0, "offline.ts", ended=True, duration=8.0, discontinuity_before="offline.ts")
    await world.settle()
    async with asyncio.timeout(1):
        r = await client.get(f"/live/0/playlist.m3u8?_HLS_msn={last(world) + 2}")
    assert r.status == 200 and (await r.text()).endswith("#EXT-X-ENDLIST\n")


async def test_with_blocking_reload_off_the_parameters_are_ignored(tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    world = World(tmp_path)
    client: Client = await aiohttp_client(
        create_app(world.playlists, world.report, world.metrics, blocking_reload=False))
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    try:
        plain = await (await client.get("/live/0/playlist.m3u8")).text()
        assert "CAN-BLOCK-RELOAD" not in plain
        async with asyncio.timeout(1):  # answered at once, not held for the next segment
            for query in (f"_HLS_msn={last(world) + 1}", "_HLS_part=1", "_HLS_skip=YES"):
                r = await client.get(f"/live/0/playlist.m3u8?{query}")
                assert r.status == 200 and await r.text() == plain, query
    finally:
        await world.pub.close()
