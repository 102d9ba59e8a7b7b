"""PlaylistMirror (PUBLISH_PLAYLISTS): newest version wins, never an older one after a newer one,
the master only after its variants, and through a bucket outage. Plus the Publisher feeding it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from broadcaster.metrics import Metrics
from broadcaster.bucket.mirror import PlaylistMirror
from tests.support.fakes import FakeStore, version
from tests.support.served import MakeWorld
from tests.support.waiting import until


@pytest.fixture
async def mirror() -> AsyncIterator[tuple[PlaylistMirror, FakeStore]]:
    store = FakeStore()
    m = PlaylistMirror(store, Metrics(), attempt_timeout=1.0)
    yield m, store
    await m.close()


async def test_each_version_is_written_with_playlist_headers(mirror: tuple[PlaylistMirror, FakeStore]) -> None:
    m, store = mirror
    m.offer("live/0/playlist.m3u8", version(1), "public, max-age=1")
    assert await m.drain(5)
    [put] = store.puts
    assert (put.key, put.body, put.content_type, put.cache_control) == (
        "live/0/playlist.m3u8", version(1).body, "application/vnd.apple.mpegurl", "public, max-age=1")


async def test_versions_offered_during_a_put_collapse_to_the_newest(
        mirror: tuple[PlaylistMirror, FakeStore]) -> None:
    m, store = mirror
    key = "live/0/playlist.m3u8"
    store.hold(key)
    m.offer(key, version(1), "c")
    await until(lambda: store.attempts == [key])
    for n in range(2, 6):
        m.offer(key, version(n), "c")
    store.release(key)
    assert await m.drain(5)
    assert [p.body for p in store.puts] == [version(1).body, version(5).body]
    assert len(store.attempts) == 2  # one PUT in flight per key, 2..4 never written


async def test_master_waits_until_every_variant_it_names_is_written(
        mirror: tuple[PlaylistMirror, FakeStore]) -> None:
    m, store = mirror
    store.hold("live/1/playlist.m3u8")
    m.offer("live/master.m3u8", version(0), "c", requires=("live/0/playlist.m3u8", "live/1/playlist.m3u8"))
    m.offer("live/0/playlist.m3u8", version(1), "c")
    m.offer("live/1/playlist.m3u8", version(1), "c")
    await until(lambda: "live/0/playlist.m3u8" in store.keys())
    assert "live/master.m3u8" not in store.attempts
    store.release("live/1/playlist.m3u8")
    assert await m.drain(5)
    assert store.keys()[-1] == "live/master.m3u8"


async def test_outage_then_the_newest_version_is_written(mirror: tuple[PlaylistMirror, FakeStore]) -> None:
    m, store = mirror
    key = "live/0/playlist.m3u8"
    store.down = True
    m.offer(key, version(1), "c")
    await until(lambda: len(store.attempts) >= 1)
    assert m.lag > 0 and not await m.drain(0.05)
    m.offer(key, version(2), "c")
    store.down = False
    m.offer(key, version(3), "c")
    assert await m.drain(10)
    assert [p.body for p in store.puts] == [version(3).body] and m.lag == 0


async def test_the_same_version_is_not_written_twice(mirror: tuple[PlaylistMirror, FakeStore]) -> None:
    m, store = mirror
    v = version(1)
    m.offer("k", v, "c")
    assert await m.drain(5)
    m.offer("k", v, "c")
    assert await m.drain(5)
    assert len(store.puts) == 1


async def test_publisher_mirrors_each_visible_version_without_blocking_reload(make_world: MakeWorld) -> None:
    world = make_world(window=4.0, can_block_reload=True)
    mirror = PlaylistMirror(world.store, world.metrics, attempt_timeout=1.0)
    world.release.mirror = mirror
    try:
        world.pub.on_master([])  # no master yet: only media playlists go up
        world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
        await world.settle()
        assert await mirror.drain(5)
        served = world.playlists.media_playlist(0)
        assert served is not None and b"CAN-BLOCK-RELOAD" in served.body
        written = [p for p in world.store.puts if p.key == "live/0/playlist.m3u8"]
        assert written and b"SERVER-CONTROL" not in written[-1].body
        assert written[-1].body == served.body.replace(
            b"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.0\n", b"")
        # Segment first, then playlist: every segment a written version names was stored before it.
        for i, put in enumerate(world.store.puts):
            if put.key == "live/0/playlist.m3u8":
                stored_before = {p.key for p in world.store.puts[:i]}
                named = [line.split("/live/", 1)[1] for line in put.body.decode().splitlines()
                         if line.endswith(".ts")]
                assert named and all(f"live/{n}" in stored_before for n in named), (named, stored_before)
    finally:
        await mirror.close()


async def test_writes_to_one_key_start_at_least_a_second_apart() -> None:
    """R2's 429: each key written at most once per MIN_WRITE_INTERVAL, the last version lands."""
    from broadcaster.bucket.mirror import MIN_WRITE_INTERVAL

    clock = [100.0]
    started: list[tuple[str, float]] = []

    class TimedStore(FakeStore):
        async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
            started.append((key, clock[0]))
            await super().put(key, body, content_type=content_type, cache_control=cache_control)

    async def fake_sleep(seconds: float) -> None:  # the test moves the clock
        wake = clock[0] + seconds
        while clock[0] < wake:
            await asyncio.sleep(0)

    store = TimedStore()
    m = PlaylistMirror(store, Metrics(), attempt_timeout=1.0, monotonic=lambda: clock[0], sleep=fake_sleep)
    try:
        keys = ("live/0/playlist.m3u8", "live/1/playlist.m3u8")
        for n in range(1, 21):  # 20 versions of each, 0.25 s apart
            for key in keys:
                m.offer(key, version(n), "c")
            for _ in range(5):
                await asyncio.sleep(0)
            clock[0] += 0.25
        for _ in range(40):  # 10 s more of clock for the last versions
            await asyncio.sleep(0)
            clock[0] += 0.25
        assert await m.drain(5)
        for key in keys:
            times = [t for k, t in started if k == key]
            assert len(times) >= 2
            gaps = [b - a for a, b in zip(times, times[1:])]
            assert min(gaps) >= MIN_WRITE_INTERVAL - 1e-9, (key, gaps)
            assert len(times) < 20  # coalesced
            assert [p.body for p in store.puts if p.key == key][-1] == version(20).body
    finally:
        await m.close()
