"""The VM's pathway ahead of the bucket's: a segment is listed on the VM's pathway once held and on the
bucket's once its upload lands, under the same numbers, discontinuities, durations and dates; a failed
upload keeps a copy and sends it; a restart uploads again what had not landed. A real Publisher and
Uploader over a scripted bucket (World)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broadcaster.publish.visible import VisiblePlaylists
from tests.support.hls_checker import VariantSetChecker
from tests.support.listing import listing
from tests.support.served import MakeWorld
from tests.support.waiting import until
from tests.support.world import World, held_world, passes, snapshots_of, stopped

KEYS = [f"live/{v}/stream-abc-{n}.ts" for v in (0, 1) for n in range(4)]


def listed(world: World, pathway: str, variant: int) -> list[str]:
    return [e.name for e in world.entries(pathway, variant)]


def at_target(playlists: VisiblePlaylists | None, target: int, variants: tuple[int, ...] = (0, 1)) -> bool:
    """Every one of `variants` shown, under `target`."""
    assert playlists is not None
    return all((r := playlists.media_playlist(v)) is not None
               and f"#EXT-X-TARGETDURATION:{target}\n".encode() in r.body for v in variants)


def failing_once(w: World, name: str) -> str:
    """`name` listed in variant 0; its upload waits for the test, then fails. Returns its key."""
    key = f"live/0/{name}"
    w.store.hold(key)
    w.store.fail[key] = 1
    w.owncast_lists(0, name)
    return key


def same_playlist(body: str) -> str:
    """A version with its URIs named by their files: the same playlist on every pathway."""
    return "\n".join(line.rsplit("/", 1)[1] if line and not line.startswith("#") else line
                     for line in body.splitlines())


async def test_the_vm_lists_what_it_kept_at_once_and_the_bucket_what_landed(
        tmp_path: Path, make_world: MakeWorld) -> None:
    w, held = held_world(make_world, tmp_path)
    for key in KEYS:
        w.store.hold(key)  # the bucket takes nothing
    for n in range(3):
        w.owncast_lists((0, 1), f"stream-abc-{n}.ts")
        await until(lambda: all(len(listed(w, "vm", v)) == n + 1 for v in (0, 1)))
    assert listed(w, "bucket", 0) == [] and listed(w, "bucket", 1) == []
    assert w.listed == []  # told (events, the probe) only once in the bucket
    assert all(held.get(k) is not None for k in KEYS if not k.endswith("-3.ts"))
    assert held.copies == 0  # held, not copied: no upload failed
    # Uploads land in any order: the bucket shows what is in it, in order, never a gap.
    w.store.release("live/0/stream-abc-1.ts")
    w.store.release("live/1/stream-abc-1.ts")
    await asyncio.sleep(0.05)  # nothing to wait for: the point is that nothing happens
    assert listed(w, "bucket", 0) == []
    for v in (0, 1):
        w.store.release(f"live/{v}/stream-abc-0.ts")
    await until(lambda: all(listed(w, "bucket", v) == ["stream-abc-0.ts", "stream-abc-1.ts"] for v in (0, 1)))
    for v in (0, 1):
        w.store.release(f"live/{v}/stream-abc-2.ts")
    await until(lambda: all(len(listed(w, "bucket", v)) == 3 for v in (0, 1)))
    assert sorted(w.listed) == [(v, n, f"stream-abc-{i}.ts") for v in (0, 1)
                                for i, n in enumerate(sorted({s for vv, s, _ in w.listed if vv == v}))]
    # Every version the bucket showed, the VM's pathway showed before it (with the VM's URIs).
    assert w.ahead is not None
    ahead = {(v, same_playlist(body)) for v, body in w.ahead.shown}
    assert all((v, same_playlist(body)) in ahead for v, body in w.playlists.shown), \
        "the bucket showed a version the VM never did"
    assert all(line.startswith("/live/vm/") for _v, body in w.ahead.shown for line in body.splitlines()
               if line and not line.startswith("#"))
    for view in (w.ahead.shown, w.playlists.shown):
        passes(view)


async def test_a_failed_upload_keeps_a_copy_and_sends_it_though_owncast_deleted_the_file(
        tmp_path: Path, make_world: MakeWorld) -> None:
    w, held = held_world(make_world, tmp_path)
    key = failing_once(w, "stream-abc-0.ts")  # a copy is kept for the next attempt
    await until(lambda: listed(w, "vm", 0) == ["stream-abc-0.ts"])
    original = (tmp_path / "hls" / "0" / "stream-abc-0.ts").read_bytes()
    w.store.release(key)
    # The retry waits until Owncast deleted the file, so the copy is what lands.
    w.store.hold(key)
    await until(lambda: held.copies == 1, "a copy kept after the failed attempt")
    (tmp_path / "hls" / "0" / "stream-abc-0.ts").unlink()  # Owncast's cleanup, during the outage
    w.store.release(key)
    await until(lambda: listed(w, "bucket", 0) == ["stream-abc-0.ts"])
    assert [p.body for p in w.store.puts if p.key == key] == [original]
    await until(lambda: held.copies == 0, "the copy let go once the bucket has it")


async def test_an_upload_that_lands_at_once_writes_no_copy(tmp_path: Path, make_world: MakeWorld) -> None:
    """While nothing fails the VM writes no copy; every upload sends the version read once."""
    w, held = held_world(make_world, tmp_path)
    for n in range(3):
        w.owncast_lists(0, f"stream-abc-{n}.ts")
    await until(lambda: listed(w, "bucket", 0) == [f"stream-abc-{n}.ts" for n in range(3)])
    assert held.kept == 0 and held.copies == 0 and not any((tmp_path / "state" / "segments").iterdir())
    assert held.read(held.get("live/0/stream-abc-2.ts")) == (tmp_path / "hls" / "0" / "stream-abc-2.ts").read_bytes()  # type: ignore[arg-type]


async def test_a_restart_uploads_again_what_was_listed_ahead(tmp_path: Path, make_world: MakeWorld) -> None:
    w, _ = held_world(make_world, tmp_path)
    key = "live/0/stream-abc-1.ts"
    w.store.hold(key)
    for n in range(2):
        w.owncast_lists(0, f"stream-abc-{n}.ts")
    await until(lambda: listed(w, "vm", 0) == ["stream-abc-0.ts", "stream-abc-1.ts"])
    await until(lambda: listed(w, "bucket", 0) == ["stream-abc-0.ts"])
    assert w.pub.snapshot()["variants"]["0"]["uploading"] == [key]  # type: ignore[index]
    # Saved at a stop with that upload still on its way, as the service saves.
    state = await stopped(w, w.pub.snapshot(), tmp_path / "saved")
    # A new process from that file: the bucket shows nothing it has not got, and gets it again.
    w2, _ = held_world(make_world, tmp_path / "again")
    (tmp_path / "again" / "hls" / "0" / "stream-abc-1.ts").write_bytes(b"\x47" * 376)
    assert snapshots_of(state, w2.pub).restore()
    assert w2.pub.playlist(0) is not None and w2.pub.playlist(0).landings.count() == 1  # type: ignore[union-attr]
    # Each pathway lists what it listed before the stop: the bucket's what it has.
    assert listed(w2, "bucket", 0) == ["stream-abc-0.ts"]
    assert listed(w2, "vm", 0) == ["stream-abc-0.ts", "stream-abc-1.ts"]
    await w2.pub.start()
    await until(lambda: listed(w2, "bucket", 0) == ["stream-abc-0.ts", "stream-abc-1.ts"])
    assert [p.key for p in w2.store.puts] == [key]


async def test_what_left_the_window_while_an_upload_lagged_is_deleted_after_a_restart(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """Segments leave once the slowest pathway's window is without them, across a restart too."""
    w, _ = held_world(make_world, tmp_path, window=2.0, stepped=True)
    gone: list[str] = []
    w.pub.on_removed = lambda removed: gone.extend(r.segment.key or "" for r in removed)
    w.store.hold("live/0/stream-abc-3.ts")  # its upload never lands before the stop
    for n in range(8):
        w.owncast_lists(0, f"stream-abc-{n}.ts")
        await until(lambda: listed(w, "vm", 0)[-1:] == [f"stream-abc-{n}.ts"])
        w.now += 1.0
    bucket = listed(w, "bucket", 0)
    assert bucket[-1] == "stream-abc-2.ts"
    assert listed(w, "vm", 0)[0] == bucket[0]  # one front: the bucket's version still a window long
    assert len(bucket) >= 2 and listed(w, "vm", 0)[-1] == "stream-abc-7.ts"
    # What the bucket's version still lists has not left: segment 3's upload has not landed.
    assert not {f"live/0/{name}" for name in bucket} & set(gone)
    assert f"live/0/{bucket[0]}" not in gone
    state = await stopped(w, w.pub.snapshot(), tmp_path / "saved")
    w2, _ = held_world(make_world, tmp_path / "again", window=2.0, stepped=True)
    w2.pub.on_removed = lambda removed: gone.extend(r.segment.key or "" for r in removed)
    for n in range(8):  # the files of segments still listed, as Owncast keeps them
        w2.write(0, f"stream-abc-{n}.ts")
    assert snapshots_of(state, w2.pub).restore()
    await w2.pub.start()
    w2.now += 10.0
    w2.owncast_lists(0, "stream-abc-8.ts")
    await until(lambda: {f"live/0/{name}" for name in bucket} <= set(gone),
                "the keys the bucket's version moved past handed to the cleaner", detail=lambda: sorted(gone))


async def test_without_a_keeper_nothing_changes(tmp_path: Path) -> None:
    """PATHWAYS=bucket: listed once uploaded, as before (the bucket's playlists are the only ones)."""
    w = World(tmp_path)
    assert w.ahead is None
    w.store.hold("live/0/stream-abc-0.ts")
    w.owncast_lists(0, "stream-abc-0.ts")
    await asyncio.sleep(0.05)
    assert w.playlists.media_playlist(0) is None
    w.store.release("live/0/stream-abc-0.ts")
    await until(lambda: w.playlists.media_playlist(0) is not None)


def gaps(world: World, pathway: str, variant: int) -> list[str]:
    return [e.name for e in world.entries(pathway, variant) if e.gap]


async def test_an_upload_lost_after_it_was_listed_ahead_is_a_gap_on_the_buckets_pathway(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """No copy and the file deleted: the bucket's playlist shows a gap there from its first version."""
    w, held = held_world(make_world, tmp_path, max_bytes=100)  # no room for a 376-byte copy
    key = failing_once(w, "stream-abc-0.ts")
    w.owncast_lists(0, "stream-abc-1.ts")
    await until(lambda: listed(w, "vm", 0) == ["stream-abc-0.ts", "stream-abc-1.ts"])
    (tmp_path / "hls" / "0" / "stream-abc-0.ts").unlink()  # Owncast's cleanup
    w.store.release(key)
    await until(lambda: listed(w, "bucket", 0) == ["stream-abc-0.ts", "stream-abc-1.ts"])
    assert key not in w.store.keys()
    assert gaps(w, "bucket", 0) == ["stream-abc-0.ts"]
    # Counted lost, with why: no copy was left and Owncast's file is gone (said once, as a WARNING).
    assert w.sample("segments_lost_total", variant="0", reason="copy_dropped") == 1
    # No version of the bucket's playlist ever listed it without EXT-X-GAP.
    assert all(e.gap for _v, body in w.playlists.shown for e in listing(body) if e.name == "stream-abc-0.ts")
    passes(w.playlists.shown)


async def test_a_new_target_reaches_every_variant_of_the_bucket_at_once(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """A raise while an upload is on its way: the bucket's variants move together, the VM's at once."""
    w, _ = held_world(make_world, tmp_path)
    for n in range(2):
        w.owncast_lists((0, 1), f"stream-abc-{n}.ts")
    await until(lambda: all(len(listed(w, "bucket", v)) == 2 for v in (0, 1)))
    w.store.hold("live/1/stream-abc-2.ts")
    w.owncast_lists((0, 1), "stream-abc-2.ts", duration=3.0, target=3)
    await until(lambda: at_target(w.ahead, 3))
    assert at_target(w.playlists, 1)  # the bucket's: both still under the old target
    w.store.release("live/1/stream-abc-2.ts")
    await until(lambda: at_target(w.playlists, 3))
    passes(w.playlists.shown, allow_restart=True)


async def test_a_segment_shown_ahead_when_the_target_rises_is_listed_in_the_bucket_too(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """Shown ahead before a raise: the bucket's playlist lists it once landed, then moves on."""
    w, _ = held_world(make_world, tmp_path)
    for n in range(2):
        w.owncast_lists((0, 1), f"stream-abc-{n}.ts")
    await until(lambda: all(len(listed(w, "bucket", v)) == 2 for v in (0, 1)))
    held = "live/1/stream-abc-2.ts"
    w.store.hold(held)
    w.owncast_lists((0, 1), "stream-abc-2.ts")
    await until(lambda: listed(w, "vm", 1)[-1:] == ["stream-abc-2.ts"])
    assert listed(w, "bucket", 1)[-1:] == ["stream-abc-1.ts"]
    w.owncast_lists((0, 1), "stream-abc-3.ts", duration=3.0, target=3)
    assert w.ahead is not None
    await until(lambda: at_target(w.ahead, 3))
    w.store.release(held)
    await until(lambda: at_target(w.playlists, 3))
    for v in (0, 1):
        seen = {e.name for x, body in w.playlists.shown if x == v for e in listing(body)}
        assert {f"stream-abc-{n}.ts" for n in range(4)} <= seen, (v, sorted(seen))
    for view in (w.playlists.shown, w.ahead.shown):
        passes(view, allow_restart=True)


async def test_a_segment_shown_ahead_that_can_never_land_does_not_hold_the_new_target(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """As above, but it never lands: the bucket moves to the new target without it, never listed."""
    w, held = held_world(make_world, tmp_path, max_bytes=100)  # no room for a copy
    for n in range(2):
        w.owncast_lists(0, f"stream-abc-{n}.ts")
    await until(lambda: len(listed(w, "bucket", 0)) == 2)
    key = failing_once(w, "stream-abc-2.ts")
    await until(lambda: listed(w, "vm", 0)[-1:] == ["stream-abc-2.ts"])
    w.owncast_lists(0, "stream-abc-3.ts", duration=3.0, target=3)
    await until(lambda: at_target(w.ahead, 3, (0,)))
    (tmp_path / "hls" / "0" / "stream-abc-2.ts").unlink()  # Owncast's cleanup
    w.store.release(key)
    await until(lambda: at_target(w.playlists, 3, (0,)) and listed(w, "bucket", 0) == ["stream-abc-3.ts"])
    assert key not in w.store.keys() and held.copies == 0
    assert all(e.gap for _v, body in w.playlists.shown for e in listing(body) if e.name == "stream-abc-2.ts")
    passes(w.playlists.shown, allow_restart=True)


async def test_a_segment_lost_after_listing_is_a_gap_on_every_pathway_and_in_the_recording(
        tmp_path: Path, make_world: MakeWorld) -> None:
    # No room for a 376-byte copy.
    w, _held = held_world(make_world, tmp_path, max_bytes=100, recordings=tmp_path / "state")
    w.fallbacks["bucket"] = ("vm",)  # players are steered away from the bucket
    key = failing_once(w, "stream-abc-0.ts")
    w.owncast_lists(0, "stream-abc-1.ts")
    await until(lambda: listed(w, "vm", 0) == ["stream-abc-0.ts", "stream-abc-1.ts"])
    await until(lambda: listed(w, "bucket", 0) == ["stream-abc-0.ts", "stream-abc-1.ts"])
    assert gaps(w, "bucket", 0) == [] and "/vm/" in w.text(0), w.text(0)  # at the VM's URI, not a gap yet
    (tmp_path / "hls" / "0" / "stream-abc-0.ts").unlink()  # Owncast's cleanup
    w.store.release(key)
    await until(lambda: gaps(w, "vm", 0) == gaps(w, "bucket", 0) == ["stream-abc-0.ts"],
                "a gap on both pathways", detail=lambda: (w.text(0), listed(w, "vm", 0)))
    assert key not in w.store.keys()
    assert w.sample("segments_lost_total", variant="0", reason="copy_dropped") == 1
    # The stream ends: its recording lists the lost segment as a gap, the next one as a segment.
    w.owncast_lists(0, "stream-abc-2.ts", ended=True)
    recording = "live/0/recording-abc.m3u8"
    await until(lambda: recording in w.store.keys(), "the recording written")
    body = [p.body for p in w.store.puts if p.key == recording][-1].decode()
    gap = {e.name: e.gap for e in listing(body)}
    assert gap["stream-abc-0.ts"] and not gap["stream-abc-1.ts"], body
    for v, text in w.playlists.shown + (w.ahead.shown if w.ahead is not None else []):
        VariantSetChecker().assert_ok(str(v), text)
