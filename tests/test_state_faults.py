"""A fault at any os call of a save or a compaction, then kill -9 and a restart: no media sequence number
is served for two segments and none goes back. The k-th write call fails (tests/support/disks.py), for
every k a save and a compaction make: once (EIO, EMFILE), or from then on (the served record, written in
place, still works). Every version either process shows goes through one checker."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from broadcaster.state import disk, journal, served
from broadcaster.state.journal import JournaledState
from tests.support.disks import FaultPlan, FaultyOs
from tests.support.saved_state import VARIANTS, check_all, journaled, listed, numbers, started_afresh
from tests.support.waiting import until
from tests.support.world import World

NAMES = [f"stream-a-{i}.ts" for i in range(40)]
BEFORE = 4  # segments saved before the fault is armed
DURING = 6  # segments Owncast writes while it is armed (the fault, then saves that work again)


@pytest.fixture(autouse=True)
def _small_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "MIN_COMPACT", 4 << 10)


async def writes(w: World, names: list[str], *, first_read: int | None = None, each: bool = True) -> None:
    """Owncast writes each segment in turn; `each`: each is listed, or held back, before the next."""
    for name in names:
        w.now += 1.0
        for v in VARIANTS:
            if first_read is not None:
                w.owncast_lists(v, *NAMES[max(0, first_read - 10):first_read])
            w.owncast_lists(v, name)
        first_read = None
        await w.settle()
        if each:
            await until(lambda: listed(w, name) or w.release.held, f"{name} listed or held back")


async def run(folder: Path, plan: FaultPlan, monkeypatch: pytest.MonkeyPatch, compaction: bool) -> None:
    a = await started_afresh(journaled(folder)[0])
    assert a.snapshots is not None
    state = a.snapshots.file
    assert isinstance(state, JournaledState)
    await writes(a, NAMES[:BEFORE])
    assert listed(a, NAMES[BEFORE - 1])
    if compaction:
        state.compact_next()  # the next save writes state.json whole and starts a new journal
    with monkeypatch.context() as m:  # the served record too, unless the fault lasts
        for module in (disk, journal, *(() if plan.lasting else (served,))):
            m.setattr(module, "os", FaultyOs(plan))
        plan.armed = True
        await writes(a, NAMES[BEFORE:BEFORE + DURING])
        plan.armed = False
        await a.pub.close()  # kill -9: no save at a clean stop, what is on disk is what the next start reads
    state.close()

    b, _cleaner = journaled(folder)
    assert b.snapshots is not None and b.snapshots.restore()  # never set aside: every file on disk reads back
    await b.pub.start()
    upto = BEFORE + DURING + 2  # two segments written while no service ran
    await writes(b, NAMES[upto:upto + 3], first_read=upto, each=False)
    await until(lambda: listed(b, NAMES[upto + 2]), "the restarted service lists what Owncast writes")
    await b.pub.close()
    b.snapshots.file.close()  # type: ignore[union-attr]

    check_all(a, b)  # one number one segment, one segment one number, never back
    before, after = numbers(a.playlists.shown), numbers(b.playlists.shown)
    for v in VARIANTS:
        assert max(after[v]) > max(before[v])  # and it goes on


def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compaction: bool) -> list[str]:
    """The write calls the armed stretch makes without a fault (each is where one run injects it)."""
    plan = FaultPlan()
    asyncio.run(run(tmp_path / "dry", plan, monkeypatch, compaction))
    assert "replace" in plan.calls if compaction else "write" in plan.calls
    return plan.calls


@pytest.mark.parametrize("lasting", [False, True], ids=["once", "from-then-on"])
@pytest.mark.parametrize("compaction", [True, False], ids=["compaction", "line"])
def test_a_fault_at_any_write_call_then_kill_9_never_reuses_a_number(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compaction: bool, lasting: bool) -> None:
    seen = calls(tmp_path, monkeypatch, compaction)
    for at in range(len(seen)):
        plan = FaultPlan(at, lasting=lasting, code=errno.EIO)
        try:
            asyncio.run(run(tmp_path / f"at-{at}", plan, monkeypatch, compaction))
        except AssertionError as err:
            how = "lasting" if lasting else "once"
            raise AssertionError(f"fault at call {at} ({seen[at]}, {how}): {err}") from err
