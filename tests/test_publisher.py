"""Publisher: upload first, list second, in Owncast's order, with the real Uploader over a scripted
store (the bucket is the seam)."""

from __future__ import annotations

import asyncio
import json
import re
import logging
from pathlib import Path
from typing import Any

import pytest

from broadcaster.bucket.uploader import Uploaded
from broadcaster.publish.slots import Copy, Slot
from broadcaster.publish.target import Retarget
from broadcaster.state.disk import StateFile
from broadcaster.status.assessment import HealthReport, Readings
from broadcaster.source.owncast import SourcePlaylist, SourceSegment, SourceVariant
from tests.support.world import PUBLIC, World
from tests.support.served import MakeWorld

@pytest.fixture
def world(make_world: MakeWorld) -> World:
    return make_world()


async def one_at_a_time(world: World, variants: int | tuple[int, ...], run: str, numbers: range,
                        **listing: Any) -> None:
    """Owncast lists stream `run`'s segments `numbers` in `variants`, each settled before the next."""
    for n in numbers:
        world.owncast_lists(variants, f"stream-{run}-{n}.ts", **listing)
        await world.settle()


async def cut_apart(world: World, run: str, count: int, start: float | None = None, target: int = 1,
                    transcoded: tuple[int, ...] = (1,)) -> None:
    """Stream `run` cut apart, settled each second: `count` 1 s segments in `transcoded`, a 2 s one every
    other second in the copied variant 0 (its target `target`), dated from `start` (else by number)."""
    for n in range(count):
        date = None if start is None else start + n
        world.owncast_lists(transcoded, f"stream-{run}-{n}.ts", duration=1.0, date=date)
        if n % 2 == 0:
            world.owncast_lists(0, f"stream-{run}-{n // 2}.ts", duration=2.0, date=date, target=target)
        await world.settle()


async def test_segments_are_uploaded_with_keys_and_listed_with_public_urls(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    assert sorted(world.store.keys()) == ["live/0/stream-a-0.ts", "live/0/stream-a-1.ts"]
    assert world.uris(0) == ["stream-a-0.ts", "stream-a-1.ts"]
    assert f"{PUBLIC}/live/0/stream-a-0.ts" in world.text()


async def test_later_segment_that_finishes_first_waits_for_the_earlier_one(world: World) -> None:
    world.store.hold("live/0/stream-a-0.ts")
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts")
    await world.until(lambda: len(world.store.puts) >= 2, "two PUTs")
    assert sorted(world.store.keys()) == ["live/0/stream-a-1.ts", "live/0/stream-a-2.ts"]  # uploaded...
    assert world.playlists.media_playlist(0) is None  # ...but not listed before segment 0
    assert world.pub.queue_depth == 3
    world.store.release("live/0/stream-a-0.ts")
    await world.settle()
    assert world.uris(0) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"]
    assert [n for _, n, _ in world.listed] == [0, 1, 2]


async def test_nothing_is_listed_while_the_bucket_is_down(world: World) -> None:
    world.store.down = True
    world.owncast_lists(0, "stream-a-0.ts")
    await world.until(lambda: world.uploader.uploads_failed >= 3, "three failed uploads")
    assert world.playlists.media_playlist(0) is None
    ok, body = world.health()
    assert not ok and "storage unreachable (ServiceUnavailable)" in str(body["status"])
    world.store.down = False
    await world.settle()
    assert world.uris(0) == ["stream-a-0.ts"]
    assert world.health()[0]


async def test_segment_deleted_before_upload_is_lost_and_the_gap_marked(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts")
    await world.settle()
    world.owncast_lists(0, "stream-a-1.ts", write=False)  # Owncast listed it, then it vanished
    world.owncast_lists(0, "stream-a-2.ts")
    await world.settle()
    assert world.uris(0) == ["stream-a-0.ts", "stream-a-2.ts"]
    assert world.text().count("#EXT-X-DISCONTINUITY\n") == 1
    assert world.sample("segments_lost_total", variant="0", reason="deleted") == 1


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
    assert world.health()[1]["stream"] == "ended"
    world.segments[0] = []
    world.owncast_lists(0, "stream-b-0.ts")
    await world.settle()
    text = world.text()
    assert "ENDLIST" not in text and "#EXT-X-DISCONTINUITY\n" in text
    assert world.health()[1]["stream"] == "live"


async def test_fmp4_init_section_is_uploaded_before_its_first_media_segment(world: World) -> None:
    world.write(0, "init_0.mp4")
    world.owncast_lists(0, "stream-a-0.m4s", "stream-a-1.m4s", init="init_0.mp4")
    await world.settle()
    assert world.store.keys()[0] == "live/0/stream-a-init_0.mp4"
    assert world.store.keys().count("live/0/stream-a-init_0.mp4") == 1
    assert f'#EXT-X-MAP:URI="{PUBLIC}/live/0/stream-a-init_0.mp4"' in world.text()


async def test_missing_init_section_loses_its_segments(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.m4s", init="init_0.mp4")
    await world.settle()
    assert world.playlists.media_playlist(0) is None
    assert world.sample("segments_lost_total", variant="0", reason="init_lost") == 1


def test_a_lost_init_section_is_reported_once_not_as_an_unretrieved_future(tmp_path: Path) -> None:
    """An init section's unawaited future logs no "Future exception was never retrieved"."""
    import gc

    unretrieved: list[str] = []

    async def lose_an_init_section() -> float | None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: unretrieved.append(context["message"]))
        world = World(tmp_path)
        world.owncast_lists(0, "stream-a-0.m4s", init="init_0.mp4")
        await world.settle()
        await world.pub.close()
        return world.sample("segments_lost_total", variant="0", reason="init_lost")

    logging.disable(logging.CRITICAL)
    try:
        assert asyncio.run(lose_an_init_section()) == 1
    finally:
        logging.disable(logging.NOTSET)
    gc.collect()
    assert unretrieved == []


async def test_a_longer_segment_raises_the_target_with_a_new_playlist(world: World) -> None:
    """Passthrough: a longer segment is never dropped: the target doubles (at least), a new playlist."""
    world.pub.on_master([SourceVariant(0, 800_000), SourceVariant(1, 300_000)])
    world.owncast_lists((0, 1), "stream-a-0.ts")
    await world.settle()
    for v in (0, 1):
        world.owncast_lists(v, "stream-a-1.ts", duration=2.6)
        world.owncast_lists(v, "stream-a-2.ts", duration=1.0)
        world.owncast_lists(v, "stream-a-3.ts", duration=4.4)
    await world.settle()
    for v in (0, 1):
        assert world.uris(v)[-1] == "stream-a-3.ts"
        assert "#EXT-X-TARGETDURATION:6\n" in world.text(v)  # 1 -> 3 (2.6 s) -> 6 (4.4 s, doubled)
        assert _shown(world, v) == {f"stream-a-{i}.ts" for i in range(4)}
    assert [n for v, _, n in world.listed if v == 0] == [f"stream-a-{i}.ts" for i in range(4)]
    assert world.sample("target_duration_changes_total", reason="longer_segment") == 2
    assert world.sample("input_rejected_total", reason="rejected") is None
    numbers = [n for v, n, _ in world.listed if v == 0]
    assert numbers == sorted(set(numbers))  # never reused, never back


async def test_the_target_policy_returns_a_retarget_and_changes_no_playlist(world: World) -> None:
    """`fit` and `raise_for` return a Retarget and change no playlist; the lister applies it."""
    world.pub.on_master([SourceVariant(0, 800_000), SourceVariant(1, 300_000)])
    world.owncast_lists((0, 1), "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    policy, now = world.pub.target, 0.0
    variants = world.pub.facts().variants
    playlists = [v.playlist for v in variants]

    def state() -> list[tuple[str, bytes | None]]:
        return [(json.dumps(p.saved(now), default=lambda tail: tail.text()),
                 None if (r := p.visible()) is None else r.body) for p in playlists]

    before = state()
    assert policy.value == 1 and all(p.target_duration == 1 for p in playlists)

    async def uploaded() -> Uploaded:
        return Uploaded(0.0, None)

    task = asyncio.ensure_future(uploaded())
    ready: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    longer = SourceSegment("stream-a-2.ts", 2.6, None, False, None)
    slot = Slot((0, 2), {0: Copy(longer, "live/0/stream-a-2.ts", None, 0.0, task, ready)})
    decision = policy.fit(slot, variants, variants, 0, True, started=True)
    assert decision == Retarget(3, new_timeline=True) and policy.value == 3
    assert state() == before and all(p.target_duration == 1 for p in playlists)

    assert policy.raise_for(4.4, "longer_segment") == Retarget(6, new_timeline=True) and policy.value == 6
    assert policy.raise_for(4.4, "longer_segment") is None  # it fits now: no decision
    assert state() == before and all(p.target_duration == 1 for p in playlists)
    await task

    world.pub.lister.retarget(Retarget(6, new_timeline=True))  # what applies it: every playlist at once
    assert all(p.target_duration == 6 for p in playlists)


async def test_variants_list_the_same_slots_under_the_same_numbers(world: World) -> None:
    world.pub.on_master([SourceVariant(0, 800_000), SourceVariant(1, 300_000)])
    world.store.hold("live/1/stream-a-0.ts")
    world.owncast_lists((0, 1), "stream-a-0.ts")
    await world.until(lambda: "live/0/stream-a-0.ts" in world.store.keys(), "the first segment in the bucket")
    # variant 0's copy is in the bucket, but the slot waits for variant 1's: numbers stay aligned
    assert world.playlists.media_playlist(0) is None and world.playlists.master_playlist() is None
    world.store.release("live/1/stream-a-0.ts")
    await world.settle()
    master = world.playlists.master_playlist()
    assert master is not None and b"1/playlist.m3u8" in master.body
    world.owncast_lists((0, 1), "stream-a-1.ts")
    await world.settle()
    assert world.uris(0) == world.uris(1) == ["stream-a-0.ts", "stream-a-1.ts"]


async def test_a_loss_in_one_variant_is_a_gap_there_alone_the_others_keep_their_copy(world: World) -> None:
    """A copy lost in one variant is an EXT-X-GAP there under the same number; the others keep theirs."""
    for i in range(3):
        world.owncast_lists(0, f"stream-a-{i}.ts")
        world.owncast_lists(1, f"stream-a-{i}.ts", write=i != 1)  # variant 1's copy of 1 vanished
    await world.settle()
    assert world.uris(0) == world.uris(1) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"]
    assert "#EXT-X-GAP" not in world.text(0)
    assert world.text(1).count("#EXT-X-GAP\n") == 1
    assert world.text(1).split("#EXT-X-GAP\n")[1].split("\n")[1].endswith("/1/stream-a-1.ts")
    for v in (0, 1):
        assert "#EXT-X-DISCONTINUITY\n" not in world.text(v)
    assert "live/1/stream-a-1.ts" not in world.store.keys()
    assert [n for v, _s, n in world.listed if v == 1] == ["stream-a-0.ts", "stream-a-2.ts"]  # a gap is not told
    assert world.sample("segments_lost_total", variant="1", reason="deleted") == 1
    assert world.sample("segments_lost_total", variant="0", reason="sibling_lost") is None


async def test_a_loss_in_every_variant_drops_the_slot_in_all_with_a_discontinuity(world: World) -> None:
    for i in range(3):
        world.owncast_lists((0, 1), f"stream-a-{i}.ts", write=i != 1)
    await world.settle()
    assert world.uris(0) == world.uris(1) == ["stream-a-0.ts", "stream-a-2.ts"]
    for v in (0, 1):
        assert world.text(v).count("#EXT-X-DISCONTINUITY\n") == 1 and "#EXT-X-GAP" not in world.text(v)
    assert world.sample("segments_lost_total", variant="0", reason="deleted") == 1
    assert world.sample("segments_lost_total", variant="1", reason="deleted") == 1


async def test_starting_between_two_variant_writes_keeps_numbers_aligned(world: World) -> None:
    # The first read of variant 1 already has the next segment; variant 0's does not yet.
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    world.owncast_lists(1, "stream-a-1.ts", "stream-a-2.ts", media_sequence=1)
    world.owncast_lists(0, "stream-a-2.ts")
    await world.settle()
    assert world.uris(0) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"]
    assert world.uris(1) == ["stream-a-1.ts", "stream-a-2.ts"]
    assert "#EXT-X-MEDIA-SEQUENCE:1" in world.text(1)  # a-1 is number 1 in both


@pytest.mark.parametrize("apart", [False, True], ids=["together", "one_segment_apart"])
async def test_variants_that_end_together_or_one_segment_apart_both_end(world: World, apart: bool) -> None:
    """A last short segment only one variant gets is decided without the other: both end."""
    world.owncast_lists((0, 1), "stream-a-0.ts", "stream-a-1.ts")
    if apart:
        world.owncast_lists(0, "stream-a-2.ts", duration=0.041667)
    world.owncast_lists((0, 1), "offline.ts", ended=True, duration=8.0, discontinuity_before="offline.ts")
    await world.settle()
    for v in (0, 1):
        assert world.text(v).endswith("#EXT-X-ENDLIST\n"), (v, world.text(v))
        assert world.uris(v) == ["stream-a-0.ts", "stream-a-1.ts"], v
    assert world.pub.queue_depth == 0 and not world.pub.aligner._order
    # The next stream continues both playlists, in step.
    world.segments.clear()
    world.owncast_lists((0, 1), "stream-b-0.ts", "stream-b-1.ts", media_sequence=0)
    await world.settle()
    for v in (0, 1):
        assert "ENDLIST" not in world.text(v) and world.uris(v)[-2:] == ["stream-b-0.ts", "stream-b-1.ts"]
    assert "#EXT-X-MEDIA-SEQUENCE" in world.text(0) and world.text(0).count("\n") == world.text(1).count("\n")
    assert world.pub.queue_depth == 0 and not world.pub.aligner._order


async def test_after_an_ended_stream_a_variant_read_late_at_the_next_still_joins_its_first_slot(make_world: MakeWorld) -> None:
    world = make_world(window=30.0, stepped=True)
    world.owncast_lists((0, 1), "stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts")
    world.owncast_lists((0, 1), "offline.ts", ended=True, duration=8.0, discontinuity_before="offline.ts")
    await world.settle()
    world.now += 60.0  # the streamer comes back a minute later
    world.segments.clear()
    world.owncast_lists(0, "stream-b-0.ts", media_sequence=0)
    assert await world.pub.drain(5)  # uploaded, its done-callback run
    assert world.uris(0)[-1] == "stream-a-2.ts"  # held for variant 1
    world.now += 0.5
    world.owncast_lists(1, "stream-b-0.ts", media_sequence=0)
    world.owncast_lists((0, 1), "stream-b-1.ts")
    await world.settle()
    for v in (0, 1):  # both keep the last stream's window and list the new one after it, in step
        assert world.uris(v) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts", "stream-b-0.ts",
                                 "stream-b-1.ts"], v
    numbers = {v: [n for i, n, _ in world.listed if i == v] for v in (0, 1)}
    assert numbers[0] == numbers[1], numbers


async def test_a_variant_announced_but_silent_at_a_new_stream_holds_it_only_three_target_durations(make_world: MakeWorld) -> None:
    world = make_world(window=30.0, stepped=True)
    world.owncast_lists((0, 1), "stream-a-0.ts")
    world.owncast_lists((0, 1), "offline.ts", ended=True, duration=8.0, discontinuity_before="offline.ts")
    await world.settle()
    world.now += 60.0
    world.segments[0] = []
    world.owncast_lists(0, "stream-b-0.ts", media_sequence=0)
    assert await world.pub.drain(5)
    world.now += 2.9
    world.owncast_lists(0, "stream-b-1.ts")
    assert await world.pub.drain(5)
    assert world.uris(0)[-1] == "stream-a-0.ts"  # still waiting for variant 1
    world.now += 0.2  # 3.1 s (three target durations) after the stream's first segment: it goes on alone
    world.owncast_lists(0, "stream-b-2.ts")
    await world.settle()
    assert world.uris(0)[-3:] == ["stream-b-0.ts", "stream-b-1.ts", "stream-b-2.ts"]
    assert world.uris(1) == ["stream-a-0.ts"]


async def test_owncast_idle_transcoder_ends_the_playlist(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    world.segments[0] = []  # Owncast crashed: wiped folder, then its idle transcoder
    world.owncast_lists(0, "stream-offline-0.ts", "stream-offline-1.ts", duration=5.0, media_sequence=0)
    await world.settle()
    assert world.text().endswith("#EXT-X-ENDLIST\n")
    assert world.health() [1]["stream"] == "ended" and world.health()[0]


async def test_target_duration_is_never_taken_from_offline_clips(world: World) -> None:
    world.owncast_lists(0, "stream-offline-0.ts", duration=5.0)  # the service starts while Owncast idles
    assert world.pub.target_duration is None
    world.segments[0] = []
    world.owncast_lists(0, "stream-a-0.ts", duration=1.0, media_sequence=0)
    await world.settle()
    assert world.pub.target_duration == 1 and world.uris(0) == ["stream-a-0.ts"]


async def test_health_says_when_owncast_produces_but_nothing_is_listed(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts")
    await world.settle()
    for i in range(1, 4):
        world.owncast_lists(0, f"stream-a-{i}.ts", duration=40.0)  # beyond any target: rejected
    await world.settle()
    real = world.pub._mono
    world.pub._mono = lambda: real() + 10
    world.owncast_lists(0, "stream-a-4.ts", duration=40.0)  # Owncast keeps producing
    ok, body = world.health()
    assert not ok and "nothing listed for" in str(body["status"])


async def test_health_reports_counts_and_stall(world: World) -> None:
    ok, body = world.health()
    assert ok and body["stream"] == "idle"
    world.owncast_lists(0, "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    ok, body = world.health()
    assert ok and body["variants"] == {"0": {"segments": 2, "media_sequence": 0, "ended": False,
                                             "seconds_since_last_segment": body["variants"]["0"]["seconds_since_last_segment"]}}  # type: ignore[index]
    assert body["uploads"] == {"done": 2, "failed": 0} and body["upload_queue_depth"] == 0
    assert body["storage_reachable"] is True and body["target_duration"] == 1
    world.pub._mono = lambda: 1e12  # Owncast went quiet without ending the stream
    ok, body = world.health()
    assert not ok and "no new segment from Owncast" in str(body["status"])


async def test_blocking_wait_returns_once_the_sequence_is_listed(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts")
    await world.settle()
    first = world.playlists.media_playlist(0)
    assert first is not None
    base = first.last_sequence
    assert await world.playlists.wait_for_sequence(0, base, timeout=1) is first  # already there: at once
    waiter = asyncio.ensure_future(world.playlists.wait_for_sequence(0, base + 1, timeout=5))
    await asyncio.sleep(0)
    assert not waiter.done()
    world.owncast_lists(0, "stream-a-1.ts")
    rendered = await waiter
    assert rendered is not None and rendered.last_sequence == base + 1 and b"stream-a-1.ts" in rendered.body
    assert await world.playlists.wait_for_sequence(0, base + 5, timeout=0.05) is None  # times out


async def test_many_waiters_cost_no_tasks(world: World) -> None:
    world.owncast_lists(0, "stream-a-0.ts")
    await world.settle()
    base = world.playlists.media_playlist(0).last_sequence  # type: ignore[union-attr]
    tasks_before = len(asyncio.all_tasks())
    waiters = [asyncio.ensure_future(world.playlists.wait_for_sequence(0, base + 1, timeout=5)) for _ in range(2000)]
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == tasks_before + 2000  # only the waiters themselves
    world.owncast_lists(0, "stream-a-1.ts")
    results = await asyncio.gather(*waiters)
    assert all(r is results[0] and r is not None for r in results)


async def test_a_variant_that_reads_the_new_run_late_stays_in_step(world: World) -> None:
    world.owncast_lists((0, 1), "stream-a-0.ts", "stream-a-1.ts")
    await world.settle()
    # Owncast restarts; variant 0's first new segments are uploaded before variant 1's playlist is read.
    world.segments[0] = []
    world.owncast_lists(0, "stream-b-0.ts", "stream-b-1.ts", media_sequence=0)
    assert await world.pub.drain(5)  # its uploads done, their done-callbacks run
    assert world.uris(0)[-1] == "stream-a-1.ts"  # held for variant 1
    world.segments[1] = []
    world.owncast_lists(1, "stream-b-0.ts", "stream-b-1.ts", "stream-b-2.ts", media_sequence=0)
    world.owncast_lists(0, "stream-b-2.ts")
    await world.settle()
    assert world.uris(0) == world.uris(1)
    assert world.uris(0)[-3:] == ["stream-b-0.ts", "stream-b-1.ts", "stream-b-2.ts"]


async def test_a_variant_that_joins_a_run_after_its_first_slot_drops_that_slot(world: World) -> None:
    world.owncast_lists((0, 1), "stream-a-0.ts")
    await world.settle()
    world.segments.clear()
    world.owncast_lists(0, "stream-b-0.ts", "stream-b-1.ts", media_sequence=0)
    world.owncast_lists(1, "stream-b-1.ts", media_sequence=1)  # its list already moved past b-0
    world.owncast_lists((0, 1), "stream-b-2.ts")
    await world.settle()
    assert world.uris(0) == world.uris(1) == ["stream-a-0.ts", "stream-b-1.ts", "stream-b-2.ts"]


async def test_shortids_with_dashes_are_one_run(world: World) -> None:
    world.owncast_lists((0, 1), "stream-ab-DEF_23-0.ts", "stream-ab-DEF_23-1.ts")
    await world.settle()
    assert world.uris(0) == world.uris(1) == ["stream-ab-DEF_23-0.ts", "stream-ab-DEF_23-1.ts"]
    assert "#EXT-X-DISCONTINUITY\n" not in world.text(0)


class _CountingDict(dict):  # type: ignore[type-arg]
    values_calls = 0

    def values(self):  # type: ignore[no-untyped-def]
        self.values_calls += 1
        return super().values()


async def test_the_queue_depth_is_a_running_count_not_a_sum_per_segment(world: World) -> None:
    """Summing every pending slot on every new segment would make one long playlist quadratic."""
    slots = _CountingDict()
    world.pub.aligner._slots = slots
    names = [f"stream-a-{i}.ts" for i in range(300)]
    for name in names:
        world.store.hold(f"live/0/{name}")
        world.write(0, name)
    segments = tuple(SourceSegment(n, 1.0, None, False, None, position=i) for i, n in enumerate(names))
    world.pub.on_variant_playlist(0, SourcePlaylist(1, 0, segments, False, True))
    assert slots.values_calls < 10
    assert world.pub.queue_depth == 300
    assert world.sample("upload_queue_depth") == 300
    for name in names:
        world.store.release(f"live/0/{name}")
    await world.settle()
    assert world.pub.queue_depth == 0
    assert world.sample("upload_queue_depth") == 0


async def test_a_playlist_full_of_unsafe_names_writes_one_line_not_one_per_name(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="broadcaster.publish.publisher")
    rejected = tuple((f"../evil-{i}.ts", "not a plain file name") for i in range(500))
    world.pub.on_variant_playlist(0, SourcePlaylist(1, 0, (), False, True, rejected=rejected))
    world.pub.on_variant_playlist(0, SourcePlaylist(1, 0, (), False, True, rejected=rejected[:1] + (
        ("../more.ts", "not a plain file name"),)))
    lines = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(lines) == 1 and "../evil-0.ts" in lines[0], lines[:3]
    assert world.sample("input_rejected_total", reason="unsafe_name") == 501


async def test_variants_cut_apart_are_listed_each_on_its_own(tmp_path: Path) -> None:
    """Passthrough: each variant lists every segment as it gets it, with its own numbers."""
    world = World(tmp_path, align_by="time")
    world.pub.on_master([SourceVariant(0, 3_000_000), SourceVariant(1, 300_000)])
    await cut_apart(world, "a", 12)
    listed = {v: [name for i, _, name in world.listed if i == v] for v in (0, 1)}
    assert listed[1] == [f"stream-a-{n}.ts" for n in range(12)]  # none waits for the copied variant
    assert listed[0] == [f"stream-a-{n}.ts" for n in range(6)]
    for v in (0, 1):
        numbers = [n for i, n, _ in world.listed if i == v]
        assert numbers == sorted(set(numbers))
    assert world.sample("variants_cut_apart_total") == 1
    assert world.pub.target_duration == 2


async def test_a_new_stream_with_shorter_segments_gets_its_own_target(world: World) -> None:
    """3 s then 1 s streams: the second gets target 1 in a new playlist; 3 s again goes back up."""
    for n in range(4):
        world.owncast_lists(0, f"stream-a-{n}.ts", duration=3.0, target=3)
    world.owncast_lists(0, ended=True, target=3)
    await world.settle()
    assert world.pub.target_duration == 3
    world.segments[0] = []  # Owncast wipes its folder for a new stream
    await one_at_a_time(world, 0, "b", range(5), duration=1.0, target=1)
    assert world.pub.target_duration == 1 and "#EXT-X-TARGETDURATION:1\n" in world.text()
    world.segments[0] = []
    await one_at_a_time(world, 0, "c", range(3), duration=3.0, target=3)
    assert world.pub.target_duration == 3
    assert [name for _, _, name in world.listed] == (
        [f"stream-a-{n}.ts" for n in range(4)] + [f"stream-b-{n}.ts" for n in range(5)]
        + [f"stream-c-{n}.ts" for n in range(3)])
    assert world.sample("target_duration_changes_total", reason="new_stream") == 2


async def test_shorter_segments_after_a_stream_that_did_not_end_keep_the_target(world: World) -> None:
    """No ENDLIST between: a plain discontinuity under the longer target (video.js); after one, its own."""
    for n in range(4):
        world.owncast_lists(0, f"stream-a-{n}.ts", duration=3.0, target=3)
    await world.settle()
    world.segments[0] = []
    await one_at_a_time(world, 0, "b", range(5), duration=1.0, target=1)
    text = world.text()
    assert world.pub.target_duration == 3 and "#EXT-X-TARGETDURATION:3\n" in text
    assert "stream-a-3.ts" in text and text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert text.index("#EXT-X-DISCONTINUITY\n") < text.index("stream-b-0.ts")
    assert world.sample("target_duration_kept_total") == 1
    assert world.sample("target_duration_changes_total", reason="new_stream") is None
    world.owncast_lists(0, ended=True, target=1)
    await world.settle()
    world.segments[0] = []
    await one_at_a_time(world, 0, "c", range(3), duration=1.0, target=1)
    assert world.pub.target_duration == 1 and "#EXT-X-TARGETDURATION:1\n" in world.text()
    assert world.sample("target_duration_kept_total") == 1


async def test_a_stream_that_cannot_be_served_is_never_idle_in_health(world: World) -> None:
    """Variant playlists but no multivariant one: nothing is listed, yet /health is not idle and ok."""
    problem = "Owncast writes 0/stream.m3u8 but its multivariant playlist stream.m3u8 is missing"
    reading = HealthReport(world.pub.facts, world.uploader, readings=Readings(input_problem=lambda: problem)).assess()
    assert not reading.ok and reading.body["stream"] == "live" and reading.body["status"] == problem
    reading = HealthReport(world.pub.facts, world.uploader).assess()
    assert reading.ok and reading.body["stream"] == "idle"


async def test_a_variant_added_after_a_discontinuity_counts_the_discontinuities_before_it(world: World) -> None:
    """A variant added after a discontinuity starts at the other's discontinuity number (6.2.4), not 0."""
    one = [SourceVariant(0, 3_000_000)]
    world.pub.on_master(one)
    for run in ("a", "b"):
        world.segments = {}
        await one_at_a_time(world, 0, run, range(3))
        world.owncast_lists(0, ended=True)
        await world.settle()
    world.segments = {}
    world.pub.on_master([*one, SourceVariant(1, 300_000)])
    await one_at_a_time(world, (0, 1), "c", range(4))
    numbers = {v: [n for i, n, name in world.listed if i == v and name.startswith("stream-c")] for v in (0, 1)}
    assert numbers[0] == numbers[1] and len(numbers[0]) == 4, numbers
    gens = [world.pub.playlist(v) for v in (0, 1)]
    assert gens[0] is not None and gens[1] is not None
    assert gens[0].last_discontinuity == gens[1].last_discontinuity == 2


async def test_variants_removed_then_added_back_between_streams(world: World) -> None:
    """Variants 2 -> 1 -> 2: the one gone is ended, the one left listed at once, then numbered alike."""
    both = [SourceVariant(0, 3_000_000), SourceVariant(1, 300_000)]
    world.pub.on_master(both)
    await one_at_a_time(world, (0, 1), "a", range(3))
    world.owncast_lists((0, 1), ended=True)
    await world.settle()

    world.segments = {}  # Owncast wipes its folder; the new stream has one variant
    world.owncast_lists(0, "stream-b-0.ts")
    world.pub.on_master(both[:1])  # its master comes after the first playlist
    await world.settle()
    await one_at_a_time(world, 0, "b", range(1, 4))
    assert [name for v, _, name in world.listed if v == 0][-4:] == [f"stream-b-{n}.ts" for n in range(4)]
    gen = world.pub.playlist(1)
    assert gen is not None and gen.ended
    assert world.health()[0], world.health()  # the variant gone is not a stalled one

    world.owncast_lists(0, ended=True)
    await world.settle()
    world.segments = {}
    world.owncast_lists(0, "stream-c-0.ts")
    world.pub.on_master(both)  # back to two: variant 1 is read once the master names it
    world.owncast_lists(1, "stream-c-0.ts")
    await world.settle()
    await one_at_a_time(world, (0, 1), "c", range(1, 4))
    for v in (0, 1):
        assert [name for i, _, name in world.listed if i == v][-4:] == [f"stream-c-{n}.ts" for n in range(4)]
    numbers = {v: [n for i, n, name in world.listed if i == v and name.startswith("stream-c")] for v in (0, 1)}
    assert numbers[0] == numbers[1], numbers
    assert world.health()[0], world.health()


def _shown(world: World, variant: int) -> set[str]:
    """Every segment name some shown version of `variant` listed."""
    return {line.rsplit("/", 1)[1] for v, body in world.playlists.shown if v == variant
            for line in body.splitlines() if line and not line.startswith("#")}


async def test_a_raise_from_one_lane_lists_what_the_other_lane_listed_meanwhile(tmp_path: Path, make_world: MakeWorld) -> None:
    """A raise while the other variant's segments are listed but unshown keeps them in the new playlist."""
    state = tmp_path / "state"
    state.mkdir()
    world = make_world(state=StateFile(state), align_by="time")
    await world.pub.start()
    assert world.snapshots is not None
    world.pub.on_master([SourceVariant(0, 3_000_000), SourceVariant(1, 300_000)])
    await cut_apart(world, "a", 6, start=0.0)
    # shown: told once a saved version holds them
    await world.until(lambda: len(world.listed) >= 9, "nine segments listed")
    assert world.pub.target_duration == 2
    # The disk is slow: the save of the version listing 6 is in flight while 7 and 8 are listed.
    gate = asyncio.Event()
    save = world.snapshots.save

    async def slow_save(root: dict[str, object]) -> dict[str, object] | None:
        saved = await save(root)  # encoded at once, as the version it came with holds it; then a slow disk
        await gate.wait()
        return saved

    world.snapshots.save = slow_save  # type: ignore[method-assign]
    for n in (6, 7, 8):
        world.owncast_lists(1, f"stream-a-{n}.ts", duration=1.0)
        await world.settle()
    world.owncast_lists(0, "stream-a-3.ts", duration=3.0, date=6.0)  # 6 to 9 s: raises the target
    await world.settle()
    assert world.pub.target_duration == 4
    gate.set()
    await world.until(lambda: (0, "stream-a-3.ts") in {(v, name) for v, _, name in world.listed},
                      "stream-a-3 listed in variant 0")
    world.check()
    for n in (6, 7, 8):
        assert f"stream-a-{n}.ts" in _shown(world, 1), world.text(1)
    assert "stream-a-3.ts" in _shown(world, 0), world.text(0)


async def test_a_variant_a_passthrough_stream_adds_joins_at_the_others_discontinuity_number(
        tmp_path: Path) -> None:
    """A variant added to a passthrough stream starts at the others' discontinuity number (6.2.4)."""
    world = World(tmp_path, align_by="time", window=60.0)
    world.pub.on_master([SourceVariant(0, 3_000_000), SourceVariant(1, 300_000)])
    await cut_apart(world, "a", 8, start=0.0, target=2)
    for v in (0, 1):
        world.owncast_lists(v, ended=True, target=2 - v)
    await world.settle()
    world.segments.clear()  # Owncast wipes its folder for a new stream
    world.pub.on_master([SourceVariant(0, 3_000_000), SourceVariant(1, 300_000), SourceVariant(2, 200_000)])
    await cut_apart(world, "b", 8, start=20.0, target=2, transcoded=(1, 2))
    dnum = {v: re.findall(r"#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)", world.text(v)) for v in (0, 1, 2)}
    assert all(dnum.values()), dnum
    listed = {v: [name for i, _, name in world.listed if i == v] for v in (0, 1, 2)}
    assert listed[2] == [f"stream-b-{n}.ts" for n in range(8)]
