"""Publisher: upload first, list second, in Owncast's order, with the real Uploader over a scripted
store (the bucket is the seam)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broadcaster.hls_check import VariantSetChecker
from broadcaster.metrics import Metrics
from broadcaster.owncast import SourcePlaylist, SourceSegment, SourceVariant
from broadcaster.publisher import Publisher
from broadcaster.uploader import Uploader
from tests.fakes import FakeStore

PUBLIC = "https://cdn.example"


class World:
    """An HLS folder, a scripted bucket and a publisher, with every playlist version checked."""

    def __init__(self, tmp_path: Path, window: float = 4.0) -> None:
        self.dir = tmp_path
        self.store = FakeStore()
        self.metrics = Metrics()
        self.uploader = Uploader(self.store, self.metrics, concurrency=4, attempt_timeout=5,
                                 backoff_base=0.001, backoff_cap=0.001)
        self.listed: list[tuple[int, int, str]] = []
        self.clock = 1_800_000_000.0
        self.pub = Publisher(hls_dir=tmp_path, uploader=self.uploader, metrics=self.metrics, key_prefix="live",
                             public_url=PUBLIC, window_seconds=window, wall_clock=lambda: self.clock,
                             on_listed=lambda v, n, s: self.listed.append((v, n, s.name)))
        self.checker = VariantSetChecker(allow_resume_after_endlist=True)
        self.segments: dict[int, list[SourceSegment]] = {}

    def write(self, variant: int, name: str, size: int = 376) -> None:
        folder = self.dir / str(variant)
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"\x47" * size)

    def owncast_lists(self, variant: int, *names: str, ended: bool = False, duration: float = 1.0,
                      discontinuity_before: str | None = None, init: str | None = None,
                      media_sequence: int | None = None, write: bool = True) -> None:
        listed = self.segments.setdefault(variant, [])
        for name in names:
            if write:
                self.write(variant, name)
            listed.append(SourceSegment(name, duration, None, name == discontinuity_before, init))
        window = listed[-10:]
        ms = media_sequence if media_sequence is not None else len(listed) - len(window)
        self.pub.on_variant_playlist(variant, SourcePlaylist(1, ms, tuple(window), ended, True))

    async def settle(self) -> None:
        """Wait until every upload finished and was drained (condition, not a sleep)."""
        async with asyncio.timeout(5):
            while self.pub.queue_depth:
                await asyncio.sleep(0.001)
        self.check()

    def check(self) -> None:
        for v in self.pub.variants():
            rendered = self.pub.media_playlist(v)
            if rendered is not None:
                self.checker.assert_ok(str(v), rendered.body.decode())

    def uris(self, variant: int) -> list[str]:
        gen = self.pub.generator(variant)
        assert gen is not None
        return [u.removeprefix(f"{PUBLIC}/live/{variant}/") for u in gen.uris()]

    def text(self, variant: int = 0) -> str:
        rendered = self.pub.media_playlist(variant)
        assert rendered is not None
        return rendered.body.decode()


@pytest.fixture
async def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w  # type: ignore[misc]
    await w.pub.close()


async def test_segments_are_uploaded_with_keys_and_listed_with_public_urls(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    assert world.store.keys() == ["live/0/stream-a-0.ts", "live/0/stream-a-1.ts"]
    assert world.uris(0) == ["stream-a-0.ts", "stream-a-1.ts"]
    assert f"{PUBLIC}/live/0/stream-a-0.ts" in world.text()


async def test_later_segment_that_finishes_first_waits_for_the_earlier_one(world: World) -> None:
    world.store.hold("live/0/stream-a-0.ts")
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts")
    async with asyncio.timeout(5):
        while len(world.store.puts) < 2:
            await asyncio.sleep(0.001)
    assert world.store.keys() == ["live/0/stream-a-1.ts", "live/0/stream-a-2.ts"]  # uploaded...
    assert world.pub.media_playlist(0) is None  # ...but not listed before segment 0
    assert world.pub.queue_depth == 3
    world.store.release("live/0/stream-a-0.ts")
    await world.settle()
    assert world.uris(0) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"]
    assert [n for _, n, _ in world.listed] == [0, 1, 2]


async def test_nothing_is_listed_while_the_bucket_is_down(world: World) -> None:
    world.store.down = True
    world.owncast_lists(0, "stream-a-0.ts")
    async with asyncio.timeout(5):
        while world.uploader.uploads_failed < 3:
            await asyncio.sleep(0.001)
    assert world.pub.media_playlist(0) is None
    ok, body = world.pub.health()
    assert not ok and "storage unreachable (ServiceUnavailable)" in str(body["status"])
    world.store.down = False
    await world.settle()
    assert world.uris(0) == ["stream-a-0.ts"]
    assert world.pub.health()[0]


async def test_segment_deleted_before_upload_is_lost_and_the_gap_marked(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts")
    await world.settle()
    world.owncast_lists(0, "stream-a-1.ts", write=False)  # Owncast listed it, then it vanished
    world.owncast_lists(0, "stream-a-2.ts")
    await world.settle()
    assert world.uris(0) == ["stream-a-0.ts", "stream-a-2.ts"]
    assert world.text().count("#EXT-X-DISCONTINUITY\n") == 1
    lost = world.metrics.registry.get_sample_value(
        "hls_broadcaster_segments_lost_total", {"variant": "0", "reason": "deleted"})
    assert lost == 1


async def test_a_segment_owncast_lists_again_is_not_uploaded_twice(world: World) -> None:
    for i in range(5):
        world.owncast_lists(0, f"stream-a-{i}.ts")
        world.owncast_lists(0)  # the same playlist read again
    await world.settle()
    assert sorted(world.store.keys()) == [f"live/0/stream-a-{i}.ts" for i in range(5)]


async def test_new_stream_id_starts_a_discontinuity(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    world.owncast_lists(0, "stream-b-0.ts", "stream-b-1.ts", media_sequence=0)
    await world.settle()
    text = world.text()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert text.index("#EXT-X-DISCONTINUITY") < text.index("stream-b-0.ts")


async def test_offline_clip_ends_the_playlist_and_the_next_stream_resumes_it(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    world.owncast_lists(0, "offline.ts", ended=True, duration=8.0, discontinuity_before="offline.ts")
    await world.settle()
    assert world.text().endswith("#EXT-X-ENDLIST\n") and "offline.ts" not in world.text()
    assert "live/0/offline.ts" not in world.store.keys()
    assert world.pub.health()[1]["stream"] == "ended"
    world.segments[0] = []
    world.owncast_lists(0, "stream-b-0.ts")
    await world.settle()
    text = world.text()
    assert "ENDLIST" not in text and "#EXT-X-DISCONTINUITY\n" in text
    assert world.pub.health()[1]["stream"] == "live"


async def test_fmp4_init_section_is_uploaded_before_its_first_media_segment(world: World) -> None:
    world.write(0, "init_0.mp4")
    world.owncast_lists(0, "stream-a-0.m4s", "stream-a-1.m4s", init="init_0.mp4")
    await world.settle()
    assert world.store.keys()[0] == "live/0/a-init_0.mp4"
    assert world.store.keys().count("live/0/a-init_0.mp4") == 1
    assert f'#EXT-X-MAP:URI="{PUBLIC}/live/0/a-init_0.mp4"' in world.text()


async def test_missing_init_section_loses_its_segments(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.m4s", init="init_0.mp4")
    await world.settle()
    assert world.pub.media_playlist(0) is None
    assert world.metrics.registry.get_sample_value(
        "hls_broadcaster_segments_lost_total", {"variant": "0", "reason": "init_lost"}) == 1


async def test_too_long_segment_is_rejected_and_counted(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts")
    world.owncast_lists(0, "stream-a-1.ts", duration=2.0)
    world.owncast_lists(0, "stream-a-2.ts")
    await world.settle()
    assert world.uris(0) == ["stream-a-0.ts", "stream-a-2.ts"]
    assert world.metrics.registry.get_sample_value(
        "hls_broadcaster_input_rejected_total", {"reason": "too_long"}) == 1


async def test_variants_are_independent_and_master_waits_for_all(world: World) -> None:
    world.pub.on_master([SourceVariant(0, 800_000), SourceVariant(1, 300_000)])
    world.store.hold("live/1/stream-a-0.ts")
    world.owncast_lists(0, "stream-a-0.ts")
    world.owncast_lists(1, "stream-a-0.ts")
    async with asyncio.timeout(5):
        while world.pub.media_playlist(0) is None:
            await asyncio.sleep(0.001)
    assert world.pub.master_playlist() is None
    world.store.release("live/1/stream-a-0.ts")
    await world.settle()
    master = world.pub.master_playlist()
    assert master is not None and b"1/playlist.m3u8" in master.body


async def test_unsafe_names_are_counted_once(world: World) -> None:
    bad = SourcePlaylist(1, 0, (), False, True, rejected=(("../../etc/passwd", "not a plain file name"),))
    world.pub.on_variant_playlist(0, bad)
    world.pub.on_variant_playlist(0, bad)
    assert world.metrics.registry.get_sample_value(
        "hls_broadcaster_input_rejected_total", {"reason": "unsafe_name"}) == 1


async def test_health_reports_counts_and_stall(world: World) -> None:
    ok, body = world.pub.health()
    assert ok and body["stream"] == "idle"
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    ok, body = world.pub.health()
    assert ok and body["variants"] == {"0": {"segments": 2, "media_sequence": 0, "ended": False,
                                             "seconds_since_last_segment": body["variants"]["0"]["seconds_since_last_segment"]}}  # type: ignore[index]
    assert body["uploads"] == {"done": 2, "failed": 0} and body["upload_queue_depth"] == 0
    assert body["storage_reachable"] is True and body["target_duration"] == 1
    world.pub._mono = lambda: 1e12  # Owncast went quiet without ending the stream
    ok, body = world.pub.health()
    assert not ok and "no new segment from Owncast" in str(body["status"])
