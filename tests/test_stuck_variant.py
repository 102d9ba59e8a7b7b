"""One stuck file delays only its own variant, with a gap marked there alone (issue 50, W5).

Before: a segment file Owncast never finished held its slot in every variant until the upload gave it up
(UNFINISHED_LIMIT, 10 s), so every playlist froze (hls.js stood still 7 s), and the slot was then
dropped in every variant, the good copies too. Now the variants whose copy is in the bucket list the
slot at once; the stuck variant alone waits, at most a target duration, then lists the slot as a gap
(EXT-X-GAP, 4.4.4.7) under the same number, and goes on.

Here at the publisher's seam (a writer held by the test, a clock the test moves); the service with
hls.js in Chromium is below.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from broadcaster.source.writes import Finish
from broadcaster.state.disk import dumps
from tests.support.waiting import until
from tests.support.world import World


class HeldWrites:
    """source.writes at the seam: every file is finished when asked, but those the test holds, whose
    writer is stuck until `release` (or the upload's limit)."""

    def __init__(self) -> None:
        self._held: dict[str, asyncio.Event] = {}

    def hold(self, name: str) -> None:
        self._held[name] = asyncio.Event()

    def release(self, name: str) -> None:
        self._held.pop(name).set()

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish:
        held = self._held.get(path.name) if path.parent.name == "0" else None
        if held is None:
            return Finish.READY
        if on_writing is not None:
            on_writing()
        try:
            async with asyncio.timeout(limit):
                await held.wait()
        except TimeoutError:
            return Finish.UNFINISHED
        return Finish.WAITED


def numbered(world: World, v: int) -> dict[int, tuple[str, bool]]:
    """What variant v's visible playlist lists: number -> (segment name, listed as a gap)."""
    lines = world.text(v).splitlines()
    number = int(next(ln for ln in lines if ln.startswith("#EXT-X-MEDIA-SEQUENCE:")).split(":")[1])
    out: dict[int, tuple[str, bool]] = {}
    gap = False
    for line in lines:
        if line == "#EXT-X-GAP":
            gap = True
        elif line and not line.startswith("#"):
            out[number] = (line.rsplit("/", 1)[1], gap)
            number, gap = number + 1, False
    return out


def names(world: World, v: int) -> list[str]:
    return [name for _n, (name, _gap) in sorted(numbered(world, v).items())]


@pytest.fixture
def held() -> HeldWrites:
    return HeldWrites()


@pytest.fixture
def world(tmp_path: Path, held: HeldWrites) -> World:
    # The publisher's clock is the test's (`world.now`): the bound a stuck copy is held to passes only
    # when the test says so.
    return World(tmp_path, window=6.0, writes=held, stepped=True)


async def list_slot(world: World, i: int, held: HeldWrites | None = None) -> None:
    """Owncast lists segment i in both variants (variant 0's file held open when `held`)."""
    name = f"stream-a-{i}.ts"
    if held is not None:
        held.hold(name)
    for v in (0, 1):
        world.owncast_lists(v, name)


async def test_the_other_variants_list_on_time_and_the_stuck_one_lists_a_gap_there_alone(
    world: World, held: HeldWrites
) -> None:
    await list_slot(world, 0)
    await until(lambda: world.playlists.media_playlist(0) is not None and "stream-a-0.ts" in names(world, 1))
    await list_slot(world, 1, held)
    await list_slot(world, 2)
    # Variant 1 lists both at once; variant 0 still shows its last version, waiting for its copy.
    await until(lambda: names(world, 1) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"],
                "variant 1 lists the slot whose variant-0 file is stuck, and the next one")
    assert names(world, 0) == ["stream-a-0.ts"]
    assert world.pub.queue_depth == 2  # variant 0's copies of 1 (stuck) and 2 (uploaded, behind it)
    world.now += 0.999  # within a target duration (1 s): still waiting
    world.pub.lister.advance()
    assert names(world, 0) == ["stream-a-0.ts"]
    world.now += 0.001  # a target duration after variant 1 listed it
    world.pub.lister.advance()
    assert numbered(world, 0) == {n: (name, name == "stream-a-1.ts") for n, (name, _gap) in numbered(world, 1).items()}
    assert not any(gap for _name, gap in numbered(world, 1).values())
    for v in (0, 1):
        assert "#EXT-X-DISCONTINUITY\n" not in world.text(v)
    world.check()  # every version shown, through the checker (gaps parsed, numbers across variants)
    assert "live/0/stream-a-1.ts" not in world.store.keys()
    sample = world.metrics.registry.get_sample_value
    assert sample("hls_broadcaster_segments_lost_total", {"variant": "0", "reason": "unfinished"}) == 1
    assert sample("hls_broadcaster_segments_lost_total", {"variant": "1", "reason": "sibling_lost"}) is None
    await until(lambda: world.pub.queue_depth == 0)  # the stuck upload was stopped
    await list_slot(world, 3)
    await until(lambda: names(world, 0)[-1] == names(world, 1)[-1] == "stream-a-3.ts")
    assert list(numbered(world, 0)) == list(numbered(world, 1))
    world.check()
    await world.pub.close()


async def test_a_file_finished_within_the_bound_is_listed_late_in_its_variant_alone(
    world: World, held: HeldWrites
) -> None:
    await list_slot(world, 0)
    await list_slot(world, 1, held)
    await until(lambda: world.playlists.media_playlist(1) is not None and names(world, 1)[-1] == "stream-a-1.ts")
    assert world.playlists.media_playlist(0) is not None and names(world, 0) == ["stream-a-0.ts"]
    world.now += 0.5
    held.release("stream-a-1.ts")
    await until(lambda: names(world, 0) == names(world, 1) == ["stream-a-0.ts", "stream-a-1.ts"])
    assert "#EXT-X-GAP" not in world.text(0)
    assert list(numbered(world, 0)) == list(numbered(world, 1))
    assert world.metrics.registry.get_sample_value("hls_broadcaster_segments_lost_total",
                                                   {"variant": "0", "reason": "unfinished"}) is None
    world.check()
    await world.pub.close()


async def test_a_restart_while_a_variant_waits_lists_what_it_waited_for_as_gaps(
    tmp_path: Path, world: World, held: HeldWrites
) -> None:
    """The slot was shown in the other variants under its number: the state saved then brings it back
    as a gap in the variant that waited, and both go on under the same numbers."""
    await list_slot(world, 0)
    await list_slot(world, 1, held)
    await list_slot(world, 2)
    await until(lambda: world.playlists.media_playlist(1) is not None and names(world, 1)[-1] == "stream-a-2.ts")
    saved = json.loads(dumps(world.pub.snapshot()))
    assert [len(w) if isinstance(w, list) else w for w in saved["variants"]["0"]["waiting"]] == [7, 7]
    await world.pub.close()
    (tmp_path / "again").mkdir()
    again = World(tmp_path / "again", window=6.0, stepped=True)
    again.pub.restore({**saved, "clean_stop": True})
    assert numbered(again, 0) == {n: (name, name != "stream-a-0.ts") for n, (name, _gap) in numbered(world, 1).items()}
    for v in (0, 1):
        again.segments[v] = list(world.segments[v])
        again.owncast_lists(v, "stream-a-3.ts")
    await until(lambda: names(again, 0)[-1] == names(again, 1)[-1] == "stream-a-3.ts")
    assert list(numbered(again, 0)) == list(numbered(again, 1))
    again.check()
    await again.pub.close()
