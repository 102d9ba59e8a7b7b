"""Every variant gives a moment the same number and discontinuity number (6.2.4), whatever order its copies
come in, and across variants cut apart (docs/hls-rules.md, "Variants cut apart"); every version shown goes
through the HLS checker (tests/support/world.py). Each fixed case is one order the seeded shuffles found."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from broadcaster.source.owncast import SourceVariant
from tests.support.held_back import HeldWrites
from tests.support.listing import listing
from tests.support.served import MakeWorld
from tests.support.world import World


def numbers(world: World, v: int) -> dict[int, tuple[str, int, bool]]:
    """Variant v's visible playlist: number -> (segment name, discontinuity number, a gap)."""
    return {e.number: (e.name, e.discontinuity, e.gap) for e in listing(world.text(v))}


async def let_run() -> None:
    """Let the uploads run a little: not a wait, every version must pass whatever they got done."""
    await asyncio.sleep(0.005)


async def test_a_variant_whose_first_copy_is_lost_lists_its_gap_under_the_slots_number(
        make_world: MakeWorld) -> None:
    world = make_world(window=6.0, stepped=True)
    world.owncast_lists(0, "stream-a-0.ts")
    world.owncast_lists(0, "stream-a-1.ts")
    await world.settle()
    # Variant 1's playlist comes now; its first copy was deleted before it was read (Owncast's cleanup).
    world.owncast_lists(1, "stream-a-2.ts", write=False)
    world.owncast_lists(0, "stream-a-2.ts")
    await world.settle()
    world.owncast_lists((0, 1), "stream-a-3.ts")
    await world.settle()
    zero, one = numbers(world, 0), numbers(world, 1)
    assert zero[2] == ("stream-a-2.ts", 0, False) and one[2] == ("stream-a-2.ts", 0, True)
    assert zero[3] == ("stream-a-3.ts", 0, False) and one[3] == ("stream-a-3.ts", 0, False)
    assert "#EXT-X-DISCONTINUITY\n" not in world.text(0)  # no restart of the variant listing already


@pytest.mark.parametrize("seed", range(40))
async def test_shuffled_copies_keep_every_variant_numbered_alike(make_world: MakeWorld, seed: int) -> None:
    """The second variant up to three segments late; each copy on time, deleted before read, or held."""
    rnd = random.Random(seed)
    holds = HeldWrites()
    world = make_world(window=6.0, writes=holds, stepped=True)
    first = {0: 0, 1: rnd.choice([0, 0, 1, 2, 3])}
    for i in range(14):
        order = [0, 1]
        rnd.shuffle(order)
        for v in order:
            if i < first[v]:
                continue
            name = f"stream-a-{i}.ts"
            draw = rnd.random()  # below 0.12: deleted before it was read; then up to 0.3: held
            if 0.12 <= draw < 0.3:
                holds.hold(name, v)
            world.owncast_lists(v, name, write=draw >= 0.12)
        await let_run()
        if rnd.random() < 0.4:
            holds.release_all(keep=lambda: rnd.random() < 0.5)
        if rnd.random() < 0.3:
            world.now += rnd.choice([0.5, 1.0, 1.5])
            world.pub.lister.advance()
        await let_run()
        world.check()
    holds.release_all()
    world.now += 2
    world.pub.lister.advance()
    await let_run()
    world.check()


def checked(world: World, done: int) -> int:
    """Every version shown since the `done` first through the checker; returns how many are checked now."""
    for v, body in world.playlists.shown[done:]:
        world.checker.assert_ok(str(v), body)
    return len(world.playlists.shown)


async def stream_ended(world: World) -> int:
    """A first stream of four 2 s segments in both variants, ended, its folder wiped; versions checked."""
    world.pub.on_master([SourceVariant(0, 3_000_000), SourceVariant(1, 300_000)])
    for n in range(4):
        world.owncast_lists((0, 1), f"stream-a-{n}.ts", duration=2.0, date=2 * n, target=2)
    world.owncast_lists((0, 1), ended=True, target=2)
    await world.until(lambda: all(world.pub.playlist(v).ended for v in (0, 1)),  # type: ignore[union-attr]
                      "the first stream ended")
    world.segments.clear()
    return checked(world, 0)


def discontinuity_of(world: World, v: int, name: str) -> int:
    """The discontinuity number variant v's visible playlist lists `name` under."""
    return next(disc for listed, disc, _gap in numbers(world, v).values() if listed == name)


@pytest.mark.parametrize("raised", [False, True], ids=["no_raise", "raised"])
async def test_a_stream_cut_apart_after_its_first_slot_was_decided_with_one_copy_waiting(
        make_world: MakeWorld, raised: bool) -> None:
    """Cut apart (0.6 s late, or `raised` 2 -> 5): the first two moments, one discontinuity number."""
    holds = HeldWrites()
    world = make_world(align_by="time", window=6.0, writes=holds, stepped=True)
    done = await stream_ended(world)
    holds.hold("stream-b-0.ts", 1)
    world.owncast_lists(1, "stream-b-0.ts", duration=2.0, date=20, target=2)
    world.owncast_lists(0, "stream-b-0.ts", duration=2.2, date=20, target=2)  # the same moment: together
    await world.until(lambda: "stream-b-0" in world.text(0), "stream-b-0 listed in variant 0")
    done = checked(world, done)
    world.owncast_lists(1, "stream-b-1.ts", duration=2.0, date=22, target=2)
    if raised:
        world.owncast_lists(0, "stream-b-1.ts", duration=4.6, date=22.2, target=5)
    else:
        world.owncast_lists(0, "stream-b-1.ts", duration=2.0, date=22.8, target=2)
    await let_run()
    done = checked(world, done)
    holds.release_all()
    await world.until(lambda: all("stream-b-1" in world.text(v) for v in (0, 1)), "stream-b-1 listed in both")
    world.owncast_lists(1, "stream-b-2.ts", duration=2.0, date=24, target=2)
    await world.until(lambda: "stream-b-2" in world.text(1), "stream-b-2 listed in variant 1")
    checked(world, done)
    assert world.sample("variants_cut_apart_total") == 1
    assert world.pub.target_duration == (5 if raised else 2)
    # The waiting copy's place in its lane: after the slot decided together, no jump (and no gap) there.
    if not raised:
        assert discontinuity_of(world, 1, "stream-b-1.ts") == discontinuity_of(world, 0, "stream-b-1.ts") \
            == discontinuity_of(world, 0, "stream-b-0.ts") == 1


async def test_the_second_lane_to_start_a_stream_does_not_start_it_again(make_world: MakeWorld) -> None:
    """Though it advertises 4 s; meanwhile the other lane waits for it (one target at a time, 6.2.4)."""
    holds = HeldWrites()
    world = make_world(align_by="time", window=6.0, writes=holds, stepped=True)
    done = await stream_ended(world)
    holds.hold("stream-b-0.ts", 0)
    holds.hold("stream-b-1.ts", 0)  # held to the end: its raise of the target is not this test's
    world.owncast_lists(0, "stream-b-0.ts", duration=3.0, date=20, target=3)
    world.owncast_lists(1, "stream-b-0.ts", duration=2.0, date=20, target=2)
    await world.until(lambda: "stream-b-0.ts" in world.uris(1), "stream-b-0 listed in variant 1")
    world.owncast_lists(1, "stream-b-1.ts", duration=2.0, date=22, target=2)
    world.owncast_lists(0, "stream-b-1.ts", duration=4.0, date=23, target=4)
    await world.until(lambda: "stream-b-1.ts" in world.uris(1), "stream-b-1 listed in variant 1")
    assert "#EXT-X-TARGETDURATION:2\n" in world.text(1)  # not shown yet: variant 0 has nothing under 3
    done = checked(world, done)
    holds.release("stream-b-0.ts", 0)  # Owncast finished stream-b-0, not stream-b-1
    await world.until(lambda: "stream-b-0" in world.text(0), "stream-b-0 listed in variant 0")
    assert "stream-b-1" in world.text(1)  # shown together
    checked(world, done)
    assert world.pub.target_duration == 3
    assert discontinuity_of(world, 0, "stream-b-0.ts") == discontinuity_of(world, 1, "stream-b-0.ts")


@pytest.mark.parametrize(("seed", "advertised_as_listed"),
                         [*((seed, False) for seed in range(40)), *((seed, True) for seed in range(20))])
async def test_shuffled_streams_cut_apart_keep_every_variant_numbered_alike(
        make_world: MakeWorld, seed: int, advertised_as_listed: bool) -> None:
    """Three streams, the second cut apart, the third at random; segments interleaved by when each ends
    +-1.5 s. `advertised_as_listed`: the copied variant advertises its longest segment so far (Owncast's own
    target, raising it from its lane); else its longest keyframe interval from the start."""
    rnd = random.Random(seed)
    holds = HeldWrites()
    world = make_world(align_by="time", window=8.0, writes=holds, stepped=True)
    world.pub.on_master([SourceVariant(0, 3_000_000), SourceVariant(1, 300_000)])
    done, start = 0, 0.0
    for run, copied in (("a", False), ("b", True), ("c", rnd.random() < 0.5)):
        cuts: dict[int, list[tuple[str, float, float]]] = {}  # variant -> (name, duration, date)
        for v in (0, 1):
            cuts[v], t = [], 0.0
            while t < 12.0:
                d = rnd.choice([1.0, 2.0, 2.0, 3.0, 4.0, 5.0]) if copied and v == 0 else 2.0
                cuts[v].append((f"stream-{run}-{len(cuts[v])}.ts", d, start + t))
                t += d
        target = {v: 5 if copied and v == 0 and not advertised_as_listed else 2 for v in (0, 1)}
        ends = sorted((date + d + rnd.uniform(-1.5, 1.5), v) for v in (0, 1) for _n, d, date in cuts[v])
        nxt = {v: iter(cuts[v]) for v in (0, 1)}
        for _end, v in ends:
            name, d, date = next(nxt[v])
            if rnd.random() < 0.3:
                holds.hold(name, v)
            if advertised_as_listed:
                target[v] = max(target[v], math.ceil(d))
            world.owncast_lists(v, name, duration=d, date=date, target=target[v])
            if rnd.random() < 0.5:
                await let_run()
            if rnd.random() < 0.4:
                holds.release_all(keep=lambda: rnd.random() < 0.5)
            if rnd.random() < 0.3:
                world.now += rnd.choice([0.5, 1.0, 2.0, 3.0])
                world.pub.lister.advance()
            done = checked(world, done)
        holds.release_all()
        await let_run()
        if rnd.random() < 0.7:
            for v in (0, 1):
                world.owncast_lists(v, ended=True, target=target[v])
            await let_run()
        world.now += 2
        world.pub.lister.advance()
        await let_run()
        done = checked(world, done)
        world.segments.clear()  # Owncast wipes its folder for a new stream
        start += 22.0


@pytest.mark.parametrize("then", ["ended", "listed"])
async def test_a_raise_from_one_lane_after_the_other_showed_all_it_had(make_world: MakeWorld,
                                                                       then: str) -> None:
    """2 -> 5: both show under 5 together at the end or (`listed`) variant 1's next segment."""
    world = make_world(align_by="time", window=6.0, stepped=True)
    done = await stream_ended(world)
    world.owncast_lists(1, "stream-b-0.ts", duration=2.0, date=20, target=2)
    world.owncast_lists(0, "stream-b-0.ts", duration=1.0, date=20, target=1)  # cut apart: no raise yet
    for n in (1, 2):
        world.owncast_lists(1, f"stream-b-{n}.ts", duration=2.0, date=20 + 2 * n, target=2)
    await world.until(lambda: "stream-b-2" in world.text(1), "stream-b-2 listed in variant 1")
    world.owncast_lists(0, "stream-b-1.ts", duration=5.0, date=21, target=5)
    await world.until(lambda: "stream-b-1.ts" in world.uris(0), "stream-b-1 listed in variant 0")
    assert world.pub.target_duration == 5
    await let_run()
    assert all("#EXT-X-TARGETDURATION:2\n" in world.text(v) for v in (0, 1))  # neither switched yet
    if then == "ended":
        for v in (0, 1):
            world.owncast_lists(v, ended=True, target=5 - 3 * v)
    else:
        world.owncast_lists(1, "stream-b-3.ts", duration=2.0, date=26, target=2)
    await world.until(lambda: "stream-b-1" in world.text(0), "stream-b-1 shown in variant 0")
    await let_run()
    for v in (0, 1):
        shown = world.text(v)
        assert "#EXT-X-TARGETDURATION:5\n" in shown, shown
        assert shown.endswith("#EXT-X-ENDLIST\n") == (then == "ended"), shown
    assert ("stream-b-3" in world.text(1)) == (then == "listed")
    checked(world, done)


async def stream_a_listed(make_world: MakeWorld) -> tuple[World, HeldWrites]:
    """Two variants, files held at the test's word, a first stream of three 2 s segments listed in both."""
    holds = HeldWrites()
    world = make_world(align_by="time", window=8.0, writes=holds, stepped=True)
    world.pub.on_master([SourceVariant(0, 3_000_000), SourceVariant(1, 300_000)])
    for n in range(3):
        world.owncast_lists((0, 1), f"stream-a-{n}.ts", duration=2.0, date=2 * n, target=2)
    await world.until(lambda: all("stream-a-2.ts" in world.uris(v) for v in (0, 1)), "stream a listed")
    return world, holds


async def test_a_raise_while_one_variant_still_lists_the_stream_before_keeps_the_timeline(
        make_world: MakeWorld) -> None:
    """Raised (3 -> 6) before variant 1 listed any of stream b: it lists b under variant 0's numbers."""
    world, holds = await stream_a_listed(make_world)
    holds.hold("stream-b-0.ts", 1)
    world.owncast_lists(1, "stream-b-0.ts", duration=2.0, date=6, target=2)
    world.owncast_lists(0, "stream-b-0.ts", duration=3.0, date=6, target=3)  # cut apart (then 3: b's own)
    world.owncast_lists(0, "stream-b-1.ts", duration=3.0, date=9, target=3)
    world.owncast_lists(1, "stream-b-1.ts", duration=2.0, date=8, target=2)
    await world.until(lambda: "stream-b-1.ts" in world.uris(0), "stream b listed in variant 0")
    assert world.pub.target_duration == 3 and "stream-b-0.ts" not in world.uris(1), world.uris(1)
    holds.hold("stream-b-2.ts", 0)  # variant 0 too has a moment of stream b still to list after the raise
    world.owncast_lists(0, "stream-b-2.ts", duration=3.0, date=12, target=3)
    world.owncast_lists(1, "stream-b-2.ts", duration=2.0, date=10, target=2)
    world.owncast_lists(0, "stream-c-0.ts", duration=5.0, date=30, target=5)
    world.owncast_lists(1, "stream-c-0.ts", duration=2.0, date=30, target=2)
    await world.until(lambda: world.pub.target_duration == 6, "the target raised for stream c")
    holds.release_all()
    await world.until(lambda: all("stream-c-0.ts" in world.uris(v) for v in (0, 1)), "stream c listed")
    await let_run()
    checked(world, 0)
    assert discontinuity_of(world, 0, "stream-b-2.ts") == discontinuity_of(world, 1, "stream-b-2.ts") \
        < discontinuity_of(world, 0, "stream-c-0.ts") == discontinuity_of(world, 1, "stream-c-0.ts")


async def test_a_variant_lists_a_stream_cut_apart_only_after_the_last_slot_of_the_stream_before(
        make_world: MakeWorld) -> None:
    """Each lane waits for the stream before's last slot (Lanes.bound): never listed after the new first."""
    world, holds = await stream_a_listed(make_world)
    done = checked(world, 0)
    for v in (0, 1):
        holds.hold("stream-a-3.ts", v)
        world.owncast_lists(v, "stream-a-3.ts", duration=2.0, date=6, target=5)
    # The next stream, cut apart (a copied variant 0 beside a transcoded variant 1).
    world.owncast_lists(0, "stream-b-0.ts", duration=3.0, date=8, target=5)
    world.owncast_lists(1, "stream-b-0.ts", duration=2.0, date=8, target=5)
    world.owncast_lists(1, "stream-b-1.ts", duration=2.0, date=10, target=5)
    world.owncast_lists(0, "stream-b-1.ts", duration=4.0, date=11, target=5)
    # The new stream's copies in the bucket, and the turns their uploads' callbacks take.
    await world.until(lambda: all(f"live/{v}/stream-b-{n}.ts" in world.store.keys() for v in (0, 1)
                                  for n in (0, 1)), "stream b uploaded")
    for _ in range(20):
        await asyncio.sleep(0)
    assert all("stream-b-0.ts" not in world.uris(v) for v in (0, 1)), [world.uris(v) for v in (0, 1)]
    holds.release_all()
    await world.until(lambda: all("stream-b-1.ts" in world.uris(v) for v in (0, 1)), "stream b listed")
    for v in (0, 1):
        uris = world.uris(v)
        assert uris.index("stream-a-3.ts") < uris.index("stream-b-0.ts"), (v, uris)
    checked(world, done)
    assert discontinuity_of(world, 0, "stream-b-0.ts") == discontinuity_of(world, 1, "stream-b-0.ts")


async def test_a_new_stream_after_variants_cut_apart_lists_its_first_segment_at_one_number_in_each(
        make_world: MakeWorld) -> None:
    """Variant 0's last of stream b, still written, is carried into the new playlist and moved up."""
    world, holds = await stream_a_listed(make_world)
    done = checked(world, 0)
    holds.hold("stream-b-0.ts", 1)  # variant 0 lists stream b first: variant 1 comes above it
    world.owncast_lists(0, "stream-b-0.ts", duration=3.0, date=6, target=3)  # cut apart (a copied variant 0)
    world.owncast_lists(1, "stream-b-0.ts", duration=2.0, date=6, target=3)
    world.owncast_lists(0, "stream-b-1.ts", duration=2.0, date=9, target=3)
    holds.hold("stream-b-2.ts", 0)
    world.owncast_lists(0, "stream-b-2.ts", duration=1.0, date=11, target=3)
    await world.until(lambda: "stream-b-1.ts" in world.uris(0), "variant 0 lists stream b")
    for n in range(1, 4):
        world.owncast_lists(1, f"stream-b-{n}.ts", duration=2.0, date=6 + 2 * n, target=3)
    keep = iter([False, True])
    holds.release_all(keep=lambda: next(keep))  # variant 1's first, not variant 0's last
    await world.until(lambda: "stream-b-3.ts" in world.uris(1), "variant 1 lists stream b")
    world.owncast_lists((0, 1), ended=True, target=3)  # the broadcaster left: the next stream may lower it
    await let_run()
    raised = world.pub.target_duration
    world.segments.clear()  # Owncast wipes its folder for a new stream
    world.owncast_lists((0, 1), "stream-c-0.ts", duration=2.0, date=40, target=2)
    await world.until(lambda: all(f"live/{v}/stream-c-0.ts" in world.store.keys() for v in (0, 1)),
                      "stream c uploaded")
    await let_run()
    assert (raised or 0) > 2 and all("stream-c-0.ts" not in world.uris(v) for v in (0, 1)), (raised, world.uris(0))
    holds.release_all()
    await world.until(lambda: all("stream-c-0.ts" in world.uris(v) for v in (0, 1)), "stream c listed")
    world.owncast_lists((0, 1), "stream-c-1.ts", duration=2.0, date=42, target=2)
    await world.until(lambda: all("stream-c-1.ts" in world.uris(v) for v in (0, 1)), "stream c goes on")
    await let_run()
    checked(world, done)
    assert world.uris(0)[:2] == ["stream-b-2.ts", "stream-c-0.ts"], world.uris(0)  # carried, not lost
    placed = [{listed: (n, disc) for n, (listed, disc, _gap) in numbers(world, v).items()} for v in (0, 1)]
    assert placed[0]["stream-c-0.ts"] == placed[1]["stream-c-0.ts"]  # one number, one discontinuity number
