"""No segment Owncast finishes is lost, nor an earlier version of a file written again kept: a copy late
past a target duration is a gap in its live playlist for good, then uploaded whole, counted late, and
listed by the recording and clips; a file written again is listed, or replaced, with its final bytes."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest

from broadcaster.clips.book import ClipBook, ClipPlaces
from broadcaster.demo.ledger import Ledger
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.source.writes import Writes
from broadcaster.state.disk import StateFile, dumps
from tests.support.held_back import HeldWrites, both_list
from tests.support.listing import listing
from tests.support.observe import Observer
from tests.support.odd_writers import OddWriter
from tests.support.owncast_writer import HandFedOwncast, real_ts_segment
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until
from tests.support.whole import assert_whole
from tests.support.world import World
from tests.support.writes_watch import PATHS, WATCHES, watching



def entries(text: str) -> list[tuple[str, bool]]:
    """A playlist's segments in order: (file name, listed as a gap)."""
    return [(e.name, e.gap) for e in listing(text)]


def bodies(world: World, key: str) -> list[bytes]:
    return [p.body for p in world.store.puts if p.key == key]


def hls_world(tmp_path: Path, **kwargs: object) -> World:
    (tmp_path / "hls").mkdir(exist_ok=True)
    return World(tmp_path / "hls", window=6.0, stepped=True, recordings=tmp_path / "state", **kwargs)  # type: ignore[arg-type]


async def given_up_in_variant_0(world: World, name: str) -> None:
    """Variant 1 lists `name`; a target duration later variant 0 lists a gap there."""
    await until(lambda: world.playlists.media_playlist(1) is not None
                and (name, False) in entries(world.text(1)), f"variant 1 lists {name}")
    world.now += 1.0  # a target duration (1 s) after variant 1 listed it
    world.pub.lister.advance()
    assert (name, True) in entries(world.text(0)), world.text(0)


async def stream_ends(world: World, last: int) -> dict[int, list[tuple[str, bool]]]:
    """Owncast ends the stream after segment `last`: each variant's recording, as its entries."""
    world.owncast_lists((0, 1), f"stream-a-{last}.ts", ended=True)
    keys = {v: f"live/{v}/recording-a.m3u8" for v in (0, 1)}
    await until(lambda: all(bodies(world, k) for k in keys.values()), "the recordings written", 15)
    return {v: entries(bodies(world, k)[-1].decode()) for v, k in keys.items()}


class NoDeletes:
    async def delete_many(self, keys: list[str]) -> list[str]:
        raise AssertionError(f"nothing is deleted here: {keys}")


# -- late is late, not lost ------------------------------------------------------------------------------


async def test_a_copy_given_up_as_a_gap_is_uploaded_once_finished_and_recorded_not_lost(tmp_path: Path) -> None:
    held = HeldWrites()
    world = hls_world(tmp_path, writes=held)
    both_list(world, 0)
    both_list(world, 1, held)
    await given_up_in_variant_0(world, "stream-a-1.ts")
    assert "live/0/stream-a-1.ts" not in world.store.keys()
    held.release("stream-a-1.ts")  # Owncast finishes it, late
    await until(lambda: world.sample("segments_late_total", variant="0") == 1,
                "the late copy uploaded once finished, and counted late")
    assert bodies(world, "live/0/stream-a-1.ts") == [(tmp_path / "hls" / "0" / "stream-a-1.ts").read_bytes()]
    assert world.sample("segments_lost_total", variant="0", reason="unfinished") is None
    both_list(world, 2)
    await until(lambda: entries(world.text(0))[-1] == ("stream-a-2.ts", False))
    assert ("stream-a-1.ts", True) in entries(world.text(0))  # the live playlist keeps the gap it showed
    world.check()
    recordings = await stream_ends(world, 3)
    names = [f"stream-a-{i}.ts" for i in range(4)]
    assert recordings == {0: [(n, False) for n in names], 1: [(n, False) for n in names]}, recordings
    await world.pub.close()


async def test_a_copy_never_finished_is_lost_and_its_recording_lists_the_gap(tmp_path: Path) -> None:
    held = HeldWrites()
    world = hls_world(tmp_path, writes=held, unfinished_limit=0.3)
    both_list(world, 0)
    both_list(world, 1, held)
    await given_up_in_variant_0(world, "stream-a-1.ts")
    await until(lambda: world.sample("segments_lost_total", variant="0", reason="unfinished"),
                "the copy given up at the limit")
    assert world.sample("segments_late_total", variant="0") is None
    assert "live/0/stream-a-1.ts" not in world.store.keys()
    recordings = await stream_ends(world, 2)
    # The same moment under the same number in both recordings: a gap in variant 0's, as live.
    assert recordings[0] == [("stream-a-0.ts", False), ("stream-a-1.ts", True), ("stream-a-2.ts", False)]
    assert recordings[1] == [(f"stream-a-{i}.ts", False) for i in range(3)]
    await world.pub.close()


async def test_a_restart_while_a_variant_waits_uploads_its_copy_once_finished(tmp_path: Path) -> None:
    """Restored while variant 0 waits: a gap, and the copy uploaded once finished."""
    held = HeldWrites()
    world = hls_world(tmp_path, writes=held)
    both_list(world, 0)
    both_list(world, 1, held)
    both_list(world, 2)
    await until(lambda: world.playlists.media_playlist(1) is not None
                and entries(world.text(1))[-1] == ("stream-a-2.ts", False))
    saved = json.loads(dumps(world.pub.snapshot()))
    await world.pub.close()
    again_held = HeldWrites()
    again_held.hold("stream-a-1.ts")  # still being written after the restart
    again = hls_world(tmp_path, writes=again_held)
    again.pub.restore({**saved, "clean_stop": True})
    await again.pub.start()
    assert ("stream-a-1.ts", True) in entries(again.text(0))
    again_held.release("stream-a-1.ts")  # Owncast finishes it after the restart
    await until(lambda: again.sample("segments_late_total", variant="0") == 1,
                "the copy uploaded after the restart, late")
    assert bodies(again, "live/0/stream-a-1.ts") == [(tmp_path / "hls" / "0" / "stream-a-1.ts").read_bytes()]
    for v in (0, 1):
        again.segments[v] = list(world.segments[v])
    recordings = await stream_ends(again, 3)
    assert recordings[0] == recordings[1] == [(f"stream-a-{i}.ts", False) for i in range(4)], recordings
    await again.pub.close()


async def test_a_clip_lists_a_late_segment_and_a_gap_for_one_never_finished(tmp_path: Path) -> None:
    held = HeldWrites()
    world = hls_world(tmp_path, writes=held, unfinished_limit=2.0)
    both_list(world, 0)
    both_list(world, 1, held)
    await given_up_in_variant_0(world, "stream-a-1.ts")
    both_list(world, 2, held)
    await given_up_in_variant_0(world, "stream-a-2.ts")
    both_list(world, 3)
    await until(lambda: entries(world.text(0))[-1] == ("stream-a-3.ts", False))
    held.release("stream-a-1.ts")  # late; stream-a-2.ts is never finished
    await until(lambda: bodies(world, "live/0/stream-a-1.ts"), "the late copy uploaded")
    (tmp_path / "state").mkdir(exist_ok=True)
    book = ClipBook(StateFile(tmp_path / "state", "clips.json"), world.uploader, NoDeletes(), world.pub,
                    lambda: None, ClipPlaces("live", "https://cdn.example"), holder=None)
    clip = await book.make(last=100)
    [playlist] = [k for k in clip.playlists if k.endswith("/0/playlist.m3u8")]
    text = bodies(world, playlist)[-1].decode()
    assert entries(text) == [("stream-a-0.ts", False), ("stream-a-1.ts", False), ("stream-a-2.ts", True),
                             ("stream-a-3.ts", False)], text
    await world.pub.close()


# -- a reopened file is one write ------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", PATHS)
@pytest.mark.parametrize("kind", ["appended", "rewritten"])
async def test_a_file_written_again_after_its_segment_is_listed_is_replaced_in_the_bucket(
        tmp_path: Path, ts_bytes: bytes, kernel: bool, kind: str) -> None:
    """Listed half written, then written again: the bucket's object becomes the final bytes."""
    async with watching(tmp_path, kernel) as writes:
        world = World(tmp_path, writes=writes)
        writer = OddWriter(kind, ts_bytes)
        writer.begin(tmp_path / "0" / "stream-a-0.ts")
        world.owncast_lists(0, "stream-a-0.ts", write=False)
        await until(lambda: world.uris(0) == ["stream-a-0.ts"], "the first version listed")
        assert bodies(world, "live/0/stream-a-0.ts") == [ts_bytes[:writer.cut]]
        writer.finish()
        await until(lambda: bodies(world, "live/0/stream-a-0.ts")[-1] == ts_bytes,
                    "the bucket's object replaced by the file's final bytes",
                    detail=lambda: [len(b) for b in bodies(world, "live/0/stream-a-0.ts")])
        await until(lambda: world.sample("segment_rewrites_total", variant="0") == 1, "the rewrite counted")
        assert world.uris(0) == ["stream-a-0.ts"]  # the listing itself never changes
        await world.pub.close()


async def test_a_file_written_again_before_its_segment_is_listed_is_listed_with_its_final_bytes(
        tmp_path: Path) -> None:
    """Uploaded while its slot waits, then written again: listed with its final bytes."""
    world = World(tmp_path, writes=Writes(tmp_path, kernel=False, quiet=0.0))
    world.owncast_lists((0, 1), "stream-a-0.ts")
    await world.settle()
    world.store.hold("live/1/stream-a-1.ts")
    world.owncast_lists((0, 1), "stream-a-1.ts")
    await until(lambda: "live/0/stream-a-1.ts" in world.store.keys(), "variant 0's copy uploaded")
    final = b"\x47" * 188 * 3
    (tmp_path / "0" / "stream-a-1.ts").write_bytes(final)  # its writer came back
    world.store.release("live/1/stream-a-1.ts")
    await world.settle()
    world.owncast_lists((0, 1), "stream-a-2.ts")
    await world.settle()
    assert [entries(world.text(v)) for v in (0, 1)] == [[(f"stream-a-{i}.ts", False) for i in range(3)]] * 2
    assert bodies(world, "live/0/stream-a-1.ts")[-1] == final
    assert world.sample("segments_lost_total", variant="0", reason="unfinished") is None
    assert world.sample("segment_rewrites_total", variant="0") == 1
    await world.pub.close()


async def test_a_file_opened_again_for_writing_when_its_segment_is_about_to_be_listed_waits_for_its_writer(
        tmp_path: Path, ts_bytes: bytes) -> None:
    """Open again (the lease says so) as the slot is decided: variant 0 waits and lists the final bytes."""
    world = World(tmp_path, writes=Writes(tmp_path, kernel=False, quiet=0.0))
    world.owncast_lists((0, 1), "stream-a-0.ts")
    await world.settle()
    world.store.hold("live/1/stream-a-1.ts")
    writer = OddWriter("appended", ts_bytes)
    writer.begin(tmp_path / "0" / "stream-a-1.ts")
    world.owncast_lists(0, "stream-a-1.ts", write=False)
    world.owncast_lists(1, "stream-a-1.ts")
    await until(lambda: "live/0/stream-a-1.ts" in world.store.keys(), "variant 0's first version uploaded")
    with open(tmp_path / "0" / "stream-a-1.ts", "ab") as again:  # opened again, nothing written yet
        world.store.release("live/1/stream-a-1.ts")
        await until(lambda: entries(world.text(1))[-1] == ("stream-a-1.ts", False), "variant 1 lists the slot")
        assert entries(world.text(0)) == [("stream-a-0.ts", False)]  # variant 0 waits for the writer
        again.write(ts_bytes[writer.cut:])
    await until(lambda: entries(world.text(0))[-1] == ("stream-a-1.ts", False), "variant 0 lists it, final")
    assert bodies(world, "live/0/stream-a-1.ts") == [ts_bytes[:writer.cut], ts_bytes]
    await world.pub.close()


# -- the service as it runs: every segment Owncast finishes, in the bucket and the recording ---------------

WAIT = 20.0  # seconds the service may take for a step on a loaded machine


async def bucket_holds(http: aiohttp.ClientSession, url: str, data: bytes, what: str) -> None:
    """The object at `url` comes to be `data` (a condition with a timeout)."""
    got: list[int] = []

    async def holds() -> bool:
        async with http.get(url) as r:
            body = await r.read() if r.status == 200 else b""
        got[:] = [r.status, len(body)]
        return body == data

    await until(holds, what, WAIT, every=0.05, detail=lambda: f"status, bytes: {got} of {len(data)}")


async def recording(http: aiohttp.ClientSession, url: str) -> tuple[str, list[tuple[str, bool]]]:
    async def written() -> str | None:
        async with http.get(url) as r:
            return await r.text() if r.status == 200 else None

    text: str = await until(written, f"the recording at {url}", WAIT, every=0.1)
    return text, entries(text)


@pytest.mark.integration
@pytest.mark.parametrize("watch", WATCHES)
async def test_the_service_keeps_every_segment_owncast_finishes_in_the_bucket_and_the_recording(
        tmp_path: Path, seaweed: SeaweedS3, watch: str) -> None:
    ledger = Ledger()
    ts = real_ts_segment(tmp_path)
    feed = HandFedOwncast(tmp_path / "hls", ts, variants=(0, 1), ledger=ledger)
    names = [feed.slot()]
    env = service_env(feed.root, seaweed, tmp_path / "state", HLS_WATCH=watch, WINDOW_SECONDS="30",
                      KEEP_RECORDINGS="true")
    writers: list[OddWriter] = []
    m: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    try:
        async with aiohttp.ClientSession() as http:
            async with ServiceProcess(env, tmp_path / "run") as service:
                seen = Observer(service.url, http, feed.variants)
                await seen.listed_everywhere(names[0], timeout=WAIT)

                def gap_in_0(name: str) -> bool:
                    return name in seen.names(1) and any(seen.listed[0].get(n) == name for n in seen.gaps.get(0, ()))

                # Paused past a target duration: a gap in variant 0, then finished.
                writers.append(paused := OddWriter("paused", ts, ledger))
                names.append(name := feed.slot({0: paused.begin}))
                await seen.until(lambda: gap_in_0(name), WAIT, f"{name}: a gap in variant 0")  # noqa: B023
                paused.finish()
                await bucket_holds(http, seen.segment_url(0, name), ts, f"{name}, late, in the bucket whole")
                # The half spans half its #EXTINF: variant 0 lists the slot as a gap, never the half.
                writers.append(appended := OddWriter("appended", ts, ledger))
                names.append(name := feed.slot({0: appended.begin}))
                await seen.listed_everywhere(name, timeout=WAIT)
                appended.finish()
                await bucket_holds(http, seen.segment_url(0, name), ts, f"{name}, appended to, in the bucket whole")
                # Held open across a restart.
                writers.append(held := OddWriter("paused", ts, ledger))
                names.append(name := feed.slot({0: held.begin}))
                await seen.until(lambda: gap_in_0(name), WAIT, f"{name}: a gap in variant 0")  # noqa: B023
                assert await service.stop() == 0
            assert service.problems() == [], "\n".join(service.problems())
            async with ServiceProcess(env, tmp_path / "run") as again:
                seen = Observer(again.url, http, feed.variants)
                await seen.listed_everywhere(*names, timeout=WAIT)
                held.finish()  # resumed after the restart
                await bucket_holds(http, f"{seaweed.public_url}/live/0/{name}", ts, f"{name}, in the bucket whole")
                names.append(feed.slot())
                await seen.listed_everywhere(names[-1], timeout=WAIT)
                feed.offline(ts, tmp_path)  # the stream ends: its recording is written
                m = await seen.metrics()
                for v in feed.variants:
                    text, listed = await recording(http, f"{seaweed.public_url}/live/{v}/recording-f4ult.m3u8")
                    assert listed == [(n, False) for n in names], text
                    await assert_whole(http, ledger, [(urljoin(f"{seaweed.public_url}/live/{v}/", n),
                                                       feed.folder(v) / n) for n in names])
                assert await again.stop() == 0
            assert again.problems() == [], "\n".join(again.problems())
    finally:
        for w in writers:
            w.close()
    lost = {k: v for k, v in m.items() if k[0] == "hls_broadcaster_segments_lost_total" and v}
    assert lost == {}, lost
    assert m.get(("hls_broadcaster_segments_late_total", (("variant", "0"),))) == 1  # since the restart
