"""A real saved state: what a running publisher writes to STATE_DIR, for tests of restoring it; a World
saving through the journal as the service wires it; and what a World shows (listed, numbers, check_all),
for tests that save and restore it."""

from __future__ import annotations

from pathlib import Path

from broadcaster.bucket.cleaner import Cleaner
from broadcaster.playlist.segments import ListedSegment, Removed
from broadcaster.state.disk import StateFile
from broadcaster.state.journal import JournaledState
from tests.support.fakes import Bucket
from tests.support.hls_checker import VariantSetChecker
from tests.support.listing import listing
from tests.support.waiting import until
from tests.support.world import PUBLIC, World, snapshots_of


async def saved_state(tmp_path: Path) -> dict[str, object]:
    """What a running publisher (two variants, a cleaner with work to do) writes, through JSON."""
    (tmp_path / "hls").mkdir()
    w = World(tmp_path / "hls")
    cleaner = Cleaner(Bucket(), w.metrics, margin=5)
    snapshots = snapshots_of(None, w.pub, cleaner)
    w.pub.on_removed = cleaner.schedule
    w.owncast_lists((0, 1), *(f"stream-a-{i}.ts" for i in range(8)))
    await w.settle()
    old = [ListedSegment(f"{PUBLIC}/live/0/old-{i}.ts", 1.0, key=f"live/0/old-{i}.ts") for i in range(3)]
    cleaner.schedule([Removed(segment, 0, 9) for segment in old])
    state = StateFile(tmp_path / "saved")
    (tmp_path / "saved").mkdir()
    state.save({**snapshots.snapshot(w.pub.snapshot()), "clean_stop": True})
    await w.pub.close()
    data = state.load()
    assert data is not None and cleaner.pending and data["variants"]
    return data


def journaled(folder: Path, window: float = 4.0,
              cls: type[JournaledState] = JournaledState) -> tuple[World, Cleaner]:
    """A publisher in folder/hls saving through `cls` in folder/state, with its cleaner."""
    (folder / "hls").mkdir(parents=True, exist_ok=True)
    (folder / "state").mkdir(exist_ok=True)
    w = World(folder / "hls", window=window, state=cls(folder / "state"), stepped=True)
    cleaner = Cleaner(Bucket(), w.metrics, margin=5)
    assert w.snapshots is not None
    w.snapshots._parts = {}  # the service's wiring: the cleaner under "cleaner", restored first
    w.snapshots.register("cleaner", cleaner, empty=[])
    w.pub.on_removed = cleaner.schedule
    return w, cleaner


async def started_afresh(w: World) -> World:
    """`w` started where nothing was saved before (its restore finds nothing), as the service starts."""
    assert w.snapshots is not None and not w.snapshots.restore()
    await w.pub.start()
    return w


# -- what a World shows, two variants (tests of saving and restoring what was shown) -----------------

VARIANTS = (0, 1)


def listed(w: World, name: str, variants: tuple[int, ...] = VARIANTS) -> bool:
    """`name` is in every variant's visible playlist."""
    shown = [w.playlists.media_playlist(v) for v in variants]
    return all(r is not None and name.encode() in r.body for r in shown)


async def stream(w: World, first: int, last: int, variants: tuple[int, ...] = VARIANTS) -> None:
    """Owncast writes stream-a-<first> to stream-a-<last - 1> in turn, a second apart (windows slide, the
    cleaner gets work); each is shown in every variant (so saved first) before the next."""
    for n in range(first, last):
        name = f"stream-a-{n}.ts"
        w.now += 1.0
        w.owncast_lists(variants, name)
        await w.settle()
        await until(lambda: listed(w, name, variants), f"{name} shown")  # noqa: B023


def numbers(shown: list[tuple[int, str]]) -> dict[int, dict[int, str]]:
    """variant -> media sequence number -> segment name, over every version shown."""
    out: dict[int, dict[int, str]] = {v: {} for v in VARIANTS}
    for v, text in shown:
        out[v].update((e.number, e.name) for e in listing(text))
    return out


def check_all(*worlds: World) -> VariantSetChecker:
    """Every version every world showed, in order, through one checker: as one player saw them."""
    checker = VariantSetChecker(allow_resume_after_endlist=True)
    for w in worlds:
        for v, text in w.playlists.shown:
            checker.assert_ok(str(v), text)
    return checker
