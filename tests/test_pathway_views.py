"""Each pathway's playlists, one rule for all (publish/pathway_views.py), through a real Publisher and
Uploaders over scripted buckets: the first bucket's pathway lists what it lacks at the VM's URIs while
players are away; each number keeps its URI while listed (6.2.2); the VM's pathway lists only what the
bucket has while it only redirects; a second bucket's lists a segment once its own upload landed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.served import MakeWorld
from tests.support.waiting import until
from tests.support.world import World, held_world, passes, snapshots_of, stopped

NAMES = [f"stream-abc-{n}.ts" for n in range(10)]


def where(w: World, pathway: str, variant: int = 0) -> list[tuple[str, str]]:
    """(where, name) of each entry `pathway`'s newest version lists: vm, bucket, backup or gap."""
    return [("gap" if e.gap else "vm" if e.uri.startswith("/live/vm/")
             else "backup" if e.uri.startswith("https://b2.example/") else "bucket", e.name)
            for e in w.entries(pathway, variant)]


def listing(w: World, pathway: str, name: str, variant: int = 0) -> bool:
    return any(n == name for _at, n in where(w, pathway, variant))


def checked(w: World, pathway: str) -> None:
    """Every version a pathway showed, in order: the rules, and the same URI for the same number."""
    passes(w.views(pathway).shown, allow_restart=True)


async def test_steered_away_the_buckets_pathway_lists_what_it_lacks_at_the_vms_uris(
        tmp_path: Path, make_world: MakeWorld) -> None:
    w = held_world(make_world, tmp_path)[0]
    for name in NAMES[:2]:
        w.owncast_lists(0, name)
    await until(lambda: listing(w, "bucket", NAMES[1]))
    # R2 refuses writes: the VM lists 2 and 3 at once, the bucket's versions stop at 1.
    for name in NAMES[2:6]:
        w.store.hold(f"live/0/{name}")
    for name in NAMES[2:4]:
        w.owncast_lists(0, name)
    await until(lambda: listing(w, "vm", NAMES[3]))
    assert where(w, "bucket") == [("bucket", n) for n in NAMES[:2]]
    # Steered to the VM: a player still on the bucket's pathway gets 2 and 3 too, from the VM.
    w.fallbacks["bucket"] = ("vm",)
    w.pub.lister.advance()
    await until(lambda: listing(w, "bucket", NAMES[3]))
    assert where(w, "bucket") == [("bucket", n) for n in NAMES[:2]] + [("vm", n) for n in NAMES[2:4]]
    w.owncast_lists(0, NAMES[4])
    await until(lambda: listing(w, "bucket", NAMES[4]))
    # 2..5 land while players are still steered away: a number keeps its URI while it is listed.
    for name in NAMES[2:6]:
        w.store.release(f"live/0/{name}")
    await until(lambda: w.pub.playlist(0).landings.count() == 0)  # type: ignore[union-attr]
    w.pub.lister.advance()
    assert where(w, "bucket")[2:5] == [("vm", n) for n in NAMES[2:5]]
    # Steered back: what lands from now on is listed at the bucket's URI, the rest where it was.
    w.fallbacks.clear()
    w.owncast_lists(0, NAMES[5])
    w.owncast_lists(0, NAMES[6])
    await until(lambda: listing(w, "bucket", NAMES[6]))
    assert where(w, "bucket") == ([("bucket", n) for n in NAMES[:2]] + [("vm", n) for n in NAMES[2:5]]
                                  + [("bucket", n) for n in NAMES[5:7]])
    checked(w, "bucket")
    checked(w, "vm")


async def test_a_restart_lists_each_number_at_the_uri_it_had(tmp_path: Path, make_world: MakeWorld) -> None:
    """A restarted service lists saved numbers at the same VM URIs until they leave the window."""
    w = held_world(make_world, tmp_path / "a")[0]
    w.owncast_lists(0, NAMES[0])
    await until(lambda: listing(w, "bucket", NAMES[0]))
    w.store.hold(f"live/0/{NAMES[1]}")
    w.fallbacks["bucket"] = ("vm",)
    w.owncast_lists(0, NAMES[1])
    await until(lambda: where(w, "bucket")[-1:] == [("vm", NAMES[1])])
    saved = w.pub.snapshot()
    assert saved["variants"]["0"]["views"]["bucket"]["modes"]  # type: ignore[index]
    state = await stopped(w, saved, tmp_path / "saved")
    w2 = held_world(make_world, tmp_path / "b")[0]
    for name in NAMES[:2]:
        w2.write(0, name)
    assert snapshots_of(state, w2.pub).restore()
    await w2.pub.start()
    w2.owncast_lists(0, NAMES[2])  # the bucket serves: not steered away any more
    await until(lambda: listing(w2, "bucket", NAMES[2]))
    assert where(w2, "bucket") == [("bucket", NAMES[0]), ("vm", NAMES[1]), ("bucket", NAMES[2])]


@pytest.mark.parametrize("views", [
    {"bucket": {"through": "x"}}, {"bucket": {"through": 3, "modes": {"a": "vm"}}}, {"bucket": [1]},
    {"bucket": {"through": 3, "modes": {"2": 5}}}, {"bucket": {"through": -7}},
])
async def test_a_crafted_record_of_views_is_refused_and_changes_nothing(
        tmp_path: Path, make_world: MakeWorld, views: object) -> None:
    w = held_world(make_world, tmp_path / "a")[0]
    w.owncast_lists(0, NAMES[0])
    await until(lambda: listing(w, "bucket", NAMES[0]))
    saved = w.pub.snapshot()
    saved["variants"]["0"]["views"] = views  # type: ignore[index]
    state = await stopped(w, saved, tmp_path / "saved")
    w2 = held_world(make_world, tmp_path / "b")[0]
    assert not snapshots_of(state, w2.pub).restore()  # set aside, not half taken
    assert w2.pub.variants() == []


async def test_steered_away_before_anything_landed_nothing_is_listed_at_the_buckets_uri(
        tmp_path: Path, make_world: MakeWorld) -> None:
    w = held_world(make_world, tmp_path)[0]
    w.fallbacks["bucket"] = ("vm",)
    for name in NAMES[:3]:
        w.store.hold(f"live/0/{name}")
        w.owncast_lists(0, name)
    await until(lambda: listing(w, "bucket", NAMES[2]))
    assert where(w, "bucket") == [("vm", n) for n in NAMES[:3]]


async def test_while_the_vm_redirects_its_pathway_lists_only_what_the_bucket_has(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """While the VM only redirects it lists what the bucket has; what it listed stays listed."""
    w, held = held_world(make_world, tmp_path)
    w.redirects = True
    w.owncast_lists(0, NAMES[0])
    await until(lambda: listing(w, "vm", NAMES[0]))
    w.store.hold(f"live/0/{NAMES[1]}")
    w.owncast_lists(0, NAMES[1])
    await asyncio.sleep(0.05)  # nothing to wait for: the point is that it is not listed
    assert [n for _at, n in where(w, "vm")] == [NAMES[0]]
    assert len(held) == 0  # in flight, held nothing
    w.redirects = False  # steered to the VM
    w.pub.steered()  # as the service does on each change (service._steered)
    await until(lambda: listing(w, "vm", NAMES[1]))  # held now, listed before its upload landed
    assert held.get(f"live/0/{NAMES[1]}") is not None and f"live/0/{NAMES[1]}" not in [p.key for p in w.store.puts]
    w.redirects = True
    w.store.hold(f"live/0/{NAMES[2]}")
    w.owncast_lists(0, NAMES[2])
    await asyncio.sleep(0.05)
    assert [n for _at, n in where(w, "vm")] == NAMES[:2]  # 1 stays; 2 waits for the bucket
    for name in NAMES[1:3]:
        w.store.release(f"live/0/{name}")
    await until(lambda: listing(w, "vm", NAMES[2]))
    checked(w, "vm")


async def test_an_upload_failing_while_the_vm_redirects_is_listed_from_its_copy_once_players_come_to_the_vm(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """A failed upload keeps a copy: steered to the VM after the file's deletion, the VM lists it at once."""
    w, held = held_world(make_world, tmp_path)
    w.redirects = True
    w.owncast_lists(0, NAMES[0])
    await until(lambda: listing(w, "vm", NAMES[0]))
    key = f"live/0/{NAMES[1]}"
    w.store.down = True  # every attempt fails from now on
    w.owncast_lists(0, NAMES[1])
    await until(lambda: (h := held.get(key)) is not None and h.copy is not None, "a copy kept")
    body = (tmp_path / "hls" / "0" / NAMES[1]).read_bytes()
    (tmp_path / "hls" / "0" / NAMES[1]).unlink()  # Owncast's cleanup
    w.redirects = False  # steered to the VM
    w.pub.steered()
    await until(lambda: listing(w, "vm", NAMES[1]), timeout=5.0)  # not UNFINISHED_LIMIT's 10 s wait
    assert held.body(key) == body
    w.store.down = False
    await until(lambda: key in [p.key for p in w.store.puts])
    assert [p.body for p in w.store.puts if p.key == key] == [body]  # the copy, sent
    await until(lambda: held.copies == 0)  # landed: let go
    checked(w, "vm")


async def test_while_the_bucket_serves_a_slot_is_one_version_as_without_steering(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """While the VM only redirects: the same versions as without steering, nothing held."""
    async def versions(w: World) -> list[str]:
        for name in NAMES[:6]:
            for v in (0, 1):
                w.store.hold(f"live/{v}/{name}")
                w.owncast_lists(v, name)
            # Both read and being sent before either lands.
            await until(lambda: all(f"live/{v}/{name}" in w.store.attempts for v in (0, 1)))
            for v in (0, 1):
                w.store.release(f"live/{v}/{name}")
            await until(lambda: listing(w, "bucket", name) and listing(w, "bucket", name, variant=1))
        return [text for v, text in w.playlists.shown if v == 0]

    steered, held = held_world(make_world, tmp_path / "steered")
    steered.redirects = True  # the bucket serves
    plain = held_world(make_world, tmp_path / "plain", pathways=("bucket",))[0]
    shown = await versions(steered)
    assert shown == await versions(plain) and len(shown) == 6
    assert len(held) == 0


# -- a second bucket ------------------------------------------------------------------------------------


async def test_a_segment_is_listed_on_the_second_bucket_only_once_it_landed_there(
        tmp_path: Path, make_world: MakeWorld) -> None:
    w = held_world(make_world, tmp_path, pathways=("bucket", "backup", "vm"))[0]
    w.backup_store.hold(f"live/0/{NAMES[1]}")
    for name in NAMES[:3]:
        w.owncast_lists(0, name)
    await until(lambda: listing(w, "bucket", NAMES[2]) and listing(w, "vm", NAMES[2]))
    await until(lambda: listing(w, "backup", NAMES[0]))
    assert where(w, "backup") == [("backup", NAMES[0])]  # 1 is on its way there, 2 waits behind it
    w.backup_store.release(f"live/0/{NAMES[1]}")
    await until(lambda: listing(w, "backup", NAMES[2]))
    assert where(w, "backup") == [("backup", n) for n in NAMES[:3]]
    assert sorted(p.key for p in w.backup_store.puts) == sorted(f"live/0/{n}" for n in NAMES[:3])
    assert [p.body for p in w.backup_store.puts] == [(tmp_path / "hls" / "0" / p.key.rsplit("/", 1)[1]).read_bytes()
                                                     for p in w.backup_store.puts]
    checked(w, "backup")


async def test_one_failing_bucket_never_holds_back_the_other(tmp_path: Path, make_world: MakeWorld) -> None:
    w = held_world(make_world, tmp_path, pathways=("bucket", "backup", "vm"))[0]
    w.backup_store.down = True  # the second bucket is down for good here
    for name in NAMES[:4]:
        w.owncast_lists(0, name)
    await until(lambda: listing(w, "bucket", NAMES[3]))
    assert where(w, "backup") == []
    w.backup_store.down = False
    await until(lambda: listing(w, "backup", NAMES[3]), "the backlog landed on the second bucket", 10)
    w.store.down = True  # now the first one fails: the second goes on
    w.owncast_lists(0, NAMES[4])
    await until(lambda: listing(w, "backup", NAMES[4]))
    assert not listing(w, "bucket", NAMES[4])
    w.store.down = False
    await until(lambda: listing(w, "bucket", NAMES[4]), "the first bucket catches up", 10)


async def test_an_upload_that_can_never_land_on_the_second_bucket_is_a_gap_there_alone(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """No copy and the file deleted before the second bucket took it: a gap on that pathway alone."""
    w = held_world(make_world, tmp_path, pathways=("bucket", "backup", "vm"), max_bytes=100)[0]
    key = f"live/0/{NAMES[1]}"
    w.owncast_lists(0, NAMES[0])
    await until(lambda: listing(w, "backup", NAMES[0]))
    w.backup_store.hold(key)
    w.backup_store.fail[key] = 1
    w.owncast_lists(0, NAMES[1])
    await until(lambda: listing(w, "bucket", NAMES[1]))
    (tmp_path / "hls" / "0" / NAMES[1]).unlink()  # Owncast's cleanup, no copy kept
    w.backup_store.release(key)
    w.owncast_lists(0, NAMES[2])
    await until(lambda: listing(w, "backup", NAMES[2]))
    assert where(w, "backup") == [("backup", NAMES[0]), ("gap", NAMES[1]), ("backup", NAMES[2])]
    assert where(w, "bucket") == [("bucket", n) for n in NAMES[:3]]
    checked(w, "backup")


async def test_a_restart_uploads_again_what_the_second_bucket_had_not_got(
        tmp_path: Path, make_world: MakeWorld) -> None:
    w = held_world(make_world, tmp_path / "a", pathways=("bucket", "backup", "vm"))[0]
    key = f"live/0/{NAMES[1]}"
    w.backup_store.hold(key)
    for name in NAMES[:2]:
        w.owncast_lists(0, name)
    await until(lambda: listing(w, "bucket", NAMES[1]) and listing(w, "backup", NAMES[0]))
    saved = w.pub.snapshot()
    assert saved["variants"]["0"]["uploading"] == {"backup": [key]}  # type: ignore[index]
    state = await stopped(w, saved, tmp_path / "saved")
    w2 = held_world(make_world, tmp_path / "b", pathways=("bucket", "backup", "vm"))[0]
    for name in NAMES[:2]:
        w2.write(0, name)
    assert snapshots_of(state, w2.pub).restore()
    assert where(w2, "backup") == [("backup", NAMES[0])]
    await w2.pub.start()
    await until(lambda: listing(w2, "backup", NAMES[1]))
    assert [p.key for p in w2.backup_store.puts] == [key] and w2.store.puts == []


async def test_the_vm_still_answers_a_segment_its_pathway_listed_after_it_left_the_window(
        tmp_path: Path, make_world: MakeWorld) -> None:
    """A segment that left the VM's window stays available (6.2.2): Publisher.found still says so."""
    w = held_world(make_world, tmp_path, window=3.0, stepped=True)[0]
    for name in NAMES[:8]:
        w.owncast_lists(0, name)
        w.now += 1.0
        await until(lambda: listing(w, "vm", name))
    assert not listing(w, "vm", NAMES[0])  # slid out of the VM's pathway's window
    for name in NAMES[:8]:
        assert w.pub.found("vm", f"live/0/{name}") is not None, name
    assert w.pub.found("vm", "live/0/stream-abc-9.ts") is None  # never listed: nothing to answer
    assert w.pub.found("vm", "live/1/stream-abc-0.ts") is None
