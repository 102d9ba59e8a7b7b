"""Playlist delta updates (6.2.5.1, 4.4.5.2): EXT-X-SKIP answers to _HLS_skip, merged back by the client.

Each delta update is merged onto the previous full version the way a client does it, and the result
must be exactly the current full version's segments. The parser (m3u8) is independent of the renderer.
"""

from __future__ import annotations

import asyncio

import m3u8
import pytest

from broadcaster.playlist import hls
from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.segments import ListedSegment
from tests.support.client import Client
from tests.support.served import ServeWorld
from tests.support.hls_checker import MediaPlaylistChecker
from tests.support.world import World

T0 = 1_800_000_000.0


def parse(text: str) -> m3u8.M3U8:
    assert text.startswith("#EXTM3U\n") and text.endswith("\n")
    return m3u8.loads(text)


def skipped(playlist: m3u8.M3U8) -> int:
    return playlist.skip.skipped_segments if playlist.skip else 0


def held(playlist: m3u8.M3U8) -> list[tuple[int, str, float, object, object]]:
    """Each segment as a client holds it: its number, URI, duration, date and the EXT-X-MAP in force (a MAP
    repeated in a delta applies to the same segments: the section each one uses is compared)."""
    first = playlist.media_sequence + skipped(playlist)
    return [(first + n, s.uri, s.duration, s.program_date_time, s.init_section and s.init_section.uri)
            for n, s in enumerate(playlist.segments)]


def merge(previous: m3u8.M3U8, delta: m3u8.M3U8) -> list[tuple[int, str, float, object, object]]:
    """What a client holds after applying `delta` to the `previous` full playlist it had."""
    kept = {entry[0]: entry for entry in held(previous)}
    return [kept[n] for n in range(delta.media_sequence, delta.media_sequence + skipped(delta))] + held(delta)


def seg(i: int, duration: float = 1.0, **kw: object) -> ListedSegment:
    return ListedSegment(uri=f"https://r2.example/live/0/s-{i}.ts", duration=duration,
                         program_date_time=T0 + i, **kw)  # type: ignore[arg-type]


def test_long_window_offers_delta_updates_that_merge_back_into_the_full_playlist() -> None:
    gen = ManifestGenerator(1, WindowOptions(12, can_block_reload=True))
    checker = MediaPlaylistChecker(allow_resume_after_endlist=True)
    previous: m3u8.M3U8 | None = None
    now = T0
    deltas = withheld = 0
    fewest: dict[int, int] = {}  # media sequence -> the fewest segments a version under it listed
    for i in range(40):
        now += 1
        if i in (17, 29):
            gen.mark_gap()  # discontinuities inside the skipped part and inside the kept part
        gen.append(seg(i, 0.8 + (i % 3) * 0.1), now)
        rendered = gen.render()
        text = rendered.body.decode()
        full = parse(text)
        checker.assert_ok(text)
        assert "#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=6.0,CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.0\n" in text
        fewest[full.media_sequence] = min(fewest.get(full.media_sequence, len(full.segments)), len(full.segments))
        skippable = next(n for n in range(len(full.segments) + 1)
                         if sum(s.duration for s in full.segments[n + 1:]) < 6.0)
        # A request that does not say which version it holds (no _HLS_msn).
        answered = rendered.answer(True)
        if answered is rendered:
            # Nothing to skip, or a delta would list as many segments as an earlier version under the
            # same media sequence (video.js takes that for no change).
            assert skippable == 0 or len(full.segments) - skippable >= fewest[full.media_sequence]
            withheld += skippable > 0
            continue
        assert answered is rendered.delta
        delta = parse(answered.body.decode())
        assert skipped(delta) == skippable and len(delta.segments) < fewest[full.media_sequence]
        assert delta.version == hls.DELTA_PLAYLIST_VERSION and full.version < 9
        assert (delta.media_sequence, delta.discontinuity_sequence) == (full.media_sequence,
                                                                        full.discontinuity_sequence)
        assert rendered.delta.last_sequence == rendered.last_sequence
        kept = sum(s.duration for s in delta.segments)
        # Never skips into the last CAN-SKIP-UNTIL seconds, and skips all it may.
        assert kept >= 6.0 and kept - delta.segments[0].duration < 6.0
        if previous is not None:
            assert merge(previous, delta) == held(full)
            assert [s.discontinuity for s in delta.segments] == [s.discontinuity for s in full.segments][
                skipped(delta):]
            deltas += 1
        previous = full
    assert deltas > 20 and withheld > 0, (deltas, withheld)


def test_fmp4_delta_repeats_the_map_before_its_first_segment() -> None:
    gen = ManifestGenerator(1, WindowOptions(12, can_block_reload=True))
    for i in range(12):
        gen.append(seg(i, init_uri="https://r2.example/live/0/init.mp4"), T0 + i)
    delta = gen.render().delta
    assert delta is not None
    lines = delta.body.decode().splitlines()
    assert lines.index('#EXT-X-MAP:URI="https://r2.example/live/0/init.mp4"') < lines.index("#EXTINF:1.000,")


@pytest.mark.parametrize(("window", "block"), [(8.0, True), (30.0, False)])
def test_no_delta_updates_in_a_short_window_or_without_blocking_reload(window: float, block: bool) -> None:
    gen = ManifestGenerator(1, WindowOptions(window, can_block_reload=block))
    for i in range(40):
        gen.append(seg(i), T0 + i)
    assert gen.render().delta is None and b"CAN-SKIP-UNTIL" not in gen.render().body


def test_ended_playlist_has_no_delta() -> None:
    gen = ManifestGenerator(1, WindowOptions(12, can_block_reload=True))
    for i in range(12):
        gen.append(seg(i), T0 + i)
    assert gen.render().delta is not None
    gen.end()
    assert gen.render().delta is None


def test_edge_rendering_is_the_same_version_without_server_control() -> None:
    gen = ManifestGenerator(1, WindowOptions(12, can_block_reload=True))
    for i in range(12):
        gen.append(seg(i), T0 + i)
    origin, edge = gen.render().body.decode(), gen.render_edge().body.decode()
    assert "#EXT-X-SERVER-CONTROL" not in edge
    assert [line for line in origin.splitlines() if not line.startswith("#EXT-X-SERVER-CONTROL")] == \
        edge.splitlines()
    assert gen.render_edge() is gen.render_edge()  # rendered once per version
    gen.append(seg(12), T0 + 12)
    assert "s-12.ts" in gen.render_edge().body.decode()


# -- through the app --------------------------------------------------------------------------------


@pytest.fixture
async def served(serve_world: ServeWorld) -> tuple[World, Client]:
    world, client = await serve_world(window=12.0, stepped=True, can_block_reload=True)
    for i in range(14):  # one a second: the window slides, so delta updates are offered
        world.now += 1
        world.owncast_lists(0, f"stream-a-{i}.ts")
        await world.settle()
    return world, client


async def test_skip_request_gets_the_delta_update(served: tuple[World, Client]) -> None:
    _, client = served
    full = parse(await (await client.get("/live/0/playlist.m3u8")).text())
    r = await client.get("/live/0/playlist.m3u8?_HLS_skip=YES")
    assert r.status == 200
    delta = parse(await r.text())
    assert skipped(delta) > 0 and merge(full, delta) == held(full)


async def test_blocking_skip_request_is_held_then_gets_the_delta(served: tuple[World, Client]) -> None:
    world, client = served
    before = parse(await (await client.get("/live/0/playlist.m3u8")).text())
    n = held(before)[-1][0] + 1
    request = asyncio.ensure_future(client.get(f"/live/0/playlist.m3u8?_HLS_msn={n}&_HLS_skip=YES"))
    world.now += 1
    world.owncast_lists(0, "stream-a-14.ts")
    async with asyncio.timeout(5):
        r = await request
    delta = parse(await r.text())
    after = parse(await (await client.get("/live/0/playlist.m3u8")).text())
    assert held(delta)[-1][0] == n and skipped(delta) > 0
    assert merge(before, delta) == held(after)


@pytest.mark.parametrize("value", ["NO", "yes", "", "v3"])
async def test_unknown_skip_values_are_400(served: tuple[World, Client], value: str) -> None:
    _, client = served
    assert (await client.get(f"/live/0/playlist.m3u8?_HLS_skip={value}")).status == 400
