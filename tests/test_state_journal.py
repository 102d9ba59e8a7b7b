"""state.json plus an append-only journal: a save appends only what changed, compaction writes the full
state at a size threshold, a start replays the lines; a torn last line is dropped, anything else damaged
is set aside with one ERROR line."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from broadcaster.bucket.cleaner import Cleaner
from broadcaster.state import journal
from broadcaster.state.disk import Prepared, dumps
from broadcaster.state.journal import JOURNAL, JournaledState
from broadcaster.tails import Log
from tests.support.saved_state import VARIANTS, journaled, started_afresh, stream
from tests.support.waiting import until
from tests.support.world import World


class _Failing(JournaledState):
    """The journal's append fails as a full disk makes it (after part of the line went down)."""

    fail = False

    def _append(self, line: bytes) -> None:
        if self.fail:
            assert self._fd is not None
            os.write(self._fd, line[: len(line) // 2])  # half a line reached the file
            try:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError:
                os.ftruncate(self._fd, self._journal_size)
                raise
        super()._append(line)


async def started(folder: Path, cls: type[JournaledState] = JournaledState,
                  window: float = 4.0) -> tuple[World, Cleaner]:
    """A publisher with nothing saved before, started."""
    w, cleaner = journaled(folder, window, cls)
    return await started_afresh(w), cleaner


def restored(folder: Path, before: dict[str, Any]) -> tuple[World, Cleaner]:
    """A publisher made again from what `folder` holds, restored to exactly `before` (see memory)."""
    w, cleaner = journaled(folder)
    assert w.snapshots is not None and w.snapshots.restore()
    assert memory(w, cleaner) == before
    return w, cleaner


def memory(w: World, cleaner: Cleaner) -> dict[str, Any]:
    """What would be saved now, as plain JSON, without the clocks a restart shifts."""
    data: dict[str, Any] = json.loads(dumps({**w.pub.snapshot(), "cleaner": cleaner.snapshot()}))
    for v in data["variants"].values():
        if v["generator"] is not None:
            v["generator"].pop("clock")
            for entry in v["generator"]["entries"]:
                entry.pop()  # its listing time on that clock
    return data


@pytest.fixture(autouse=True)
def _small_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "MIN_COMPACT", 8 << 10)  # compacts within a test's few dozen saves


async def test_a_start_replays_the_journal_to_exactly_what_was_saved_last(tmp_path: Path) -> None:
    a, cleaner = await started(tmp_path)
    await stream(a, 0, 40)
    assert a.snapshots is not None
    state = a.snapshots.file
    assert isinstance(state, JournaledState) and state.compactions >= 2  # at the threshold, more than once
    assert (tmp_path / "state" / JOURNAL).stat().st_size > 0  # and lines since the last one
    before = memory(a, cleaner)
    await a.pub.close()  # killed: no save at a clean stop
    b, cleaner_b = restored(tmp_path, before)
    assert cleaner_b.pending == cleaner.pending > 0
    await b.pub.start()
    await stream(b, 40, 43)  # and it goes on, exactly: the first save after a start is a full one
    await b.pub.close()
    numbers = [int(u.rsplit("-", 1)[1][:-3]) for u in b.uris(0)]
    assert numbers == list(range(numbers[0], 43))


class _Counting(JournaledState):
    """Counts the bytes of each journal line written."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.lines: list[int] = []

    def write_prepared(self, prepared: Prepared) -> None:
        super().write_prepared(prepared)
        if prepared.kind == "line":
            self.lines.append(len(prepared.body))


async def test_a_line_costs_the_same_whatever_the_window(tmp_path: Path) -> None:
    sizes = {}
    for window in (4.0, 60.0):
        w, _cleaner = await started(tmp_path / str(window), _Counting, window)
        await stream(w, 0, 80)
        assert w.snapshots is not None
        state = w.snapshots.file
        assert isinstance(state, _Counting) and len(state.lines) > 20
        sizes[window] = max(state.lines[-20:])
        await w.pub.close()
    # A 60 s window lists 15 times the segments of a 4 s one; a line holds only the new ones.
    assert abs(sizes[60.0] - sizes[4.0]) < 0.05 * sizes[4.0], sizes


async def test_a_torn_last_line_is_dropped_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, cleaner = await started(tmp_path)
    await stream(a, 0, 6)
    before = memory(a, cleaner)
    await a.pub.close()
    path = tmp_path / "state" / JOURNAL
    line = path.read_bytes().splitlines()[-1]
    with open(path, "ab") as f:
        f.write(line[: len(line) // 3])  # a crash in the middle of the next save's line
    b, cleaner_b = journaled(tmp_path)
    with caplog.at_level(logging.INFO):
        assert b.snapshots is not None and b.snapshots.restore()
    assert memory(b, cleaner_b) == before
    torn = [r for r in caplog.records if "cut short" in r.getMessage()]
    assert len(torn) == 1 and torn[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await b.pub.close()


@pytest.mark.parametrize("damage", ["middle", "foreign_base", "tail_gap"])
async def test_a_damaged_journal_is_set_aside_with_one_line(tmp_path: Path, damage: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    a, _cleaner = await started(tmp_path)
    await stream(a, 0, 6)
    await a.pub.close()
    path = tmp_path / "state" / JOURNAL
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    if damage == "middle":
        lines[1] = b'{"not": "a line"\n'
    elif damage == "foreign_base":
        lines[1] = lines[1].replace(b'"$base":"', b'"$base":"0', 1)
    else:
        del lines[1]  # the next line's lists do not follow on
    path.write_bytes(b"".join(lines))
    b, cleaner_b = journaled(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert b.snapshots is not None and not b.snapshots.restore()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "state.journal" in errors[0] and "moved it to" in errors[0], errors
    assert "Traceback" not in caplog.text
    assert b.pub.variants() == [] and cleaner_b.pending == 0  # afresh: numbering from the clock
    assert not path.exists() and [p.name for p in (tmp_path / "state").iterdir() if p.name.startswith(JOURNAL)]
    await b.pub.close()


async def test_a_failed_append_leaves_no_half_line(tmp_path: Path) -> None:
    a, cleaner = await started(tmp_path, _Failing)
    await stream(a, 0, 4)
    assert a.snapshots is not None
    state = a.snapshots.file
    assert isinstance(state, _Failing)
    state.fail = True
    a.owncast_lists(VARIANTS, "stream-a-4.ts")
    await a.settle()
    snapshots = a.snapshots
    await until(lambda: snapshots.error is not None, "a snapshot error", 5, every=0.002)
    state.fail = False
    await stream(a, 5, 7)
    before = memory(a, cleaner)
    await a.pub.close()
    b, cleaner_b = restored(tmp_path, before)
    await b.pub.close()


class _FullFails(JournaledState):
    """Writing state.json whole fails (a full disk), while a journal line still fits."""

    fail = False

    def _write(self, body: bytes) -> None:
        if self.fail:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super()._write(body)


async def compactions_failing(tmp_path: Path) -> tuple[World, Cleaner, _FullFails]:
    """A publisher two segments in, from then on unable to write state.json whole."""
    a, cleaner = await started(tmp_path, _FullFails)
    assert a.snapshots is not None
    state = a.snapshots.file
    assert isinstance(state, _FullFails)
    await stream(a, 0, 2)
    state.fail = True
    return a, cleaner, state


async def test_a_compaction_that_fails_leaves_the_lines_going_on(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """And says so (/health, state_save_failing), each failed try counted."""
    monkeypatch.setattr(journal, "RETRY_LINES", 5)
    a, cleaner, state = await compactions_failing(tmp_path)
    assert a.snapshots is not None
    compactions = state.compactions
    state._journal_size = state.threshold  # a compaction is due
    failing = []
    for n in range(2, 12):  # each shown: saved as lines, the compaction tried again every 5
        await stream(a, n, n + 1)
        failing.append((a.health()[0], a.sample("state_save_failing")))
    assert state.compactions == compactions
    assert failing == [(False, 1.0)] * 10 and a.sample("state_save_failures_total") == 2
    assert a.snapshots.error == os.strerror(errno.ENOSPC)
    state.fail = False
    await stream(a, 12, 18)  # the compaction is tried again within RETRY_LINES lines, and works
    assert state.compactions == compactions + 1
    assert a.health()[0] and a.sample("state_save_failing") == 0 and a.snapshots.error is None
    before = memory(a, cleaner)
    await a.pub.close()
    b, cleaner_b = restored(tmp_path, before)
    await b.pub.close()


async def test_the_journal_is_bounded_while_compactions_fail(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of inodes (lines, but no new state.json): the journal never grows past what a start would take."""
    monkeypatch.setattr(journal, "MAX_JOURNAL", 12 << 10)
    a, _cleaner, state = await compactions_failing(tmp_path)
    limit = max(journal.MAX_JOURNAL, journal.LIMIT_FACTOR * state.threshold)
    path = tmp_path / "state" / JOURNAL
    sizes = []
    n = 2
    while not state.full:
        assert n < 2000, "the journal never reached its limit"
        await stream(a, n, n + 1)
        sizes.append(path.stat().st_size)
        n += 1
    failures = a.sample("state_save_failures_total")
    assert failures is not None
    await stream(a, n, n + 20)  # shown, each save a failed compaction: the journal stays as it is
    assert path.stat().st_size == sizes[-1] <= limit + max(b - a for a, b in zip(sizes, sizes[1:]))
    assert a.sample("state_save_failures_total") == failures + 20 and not a.health()[0]
    state.fail = False
    await stream(a, n + 20, n + 21)  # the next save compacts: an empty journal
    assert path.stat().st_size == 0 and a.health()[0]
    await a.pub.close()


async def test_any_damage_to_the_journal_restores_or_sets_aside(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Seeded damage: restored (at most a torn last line dropped) or both set aside, one ERROR line."""
    import random
    import shutil
    a, _cleaner = await started(tmp_path / "a")
    await stream(a, 0, 8)
    await a.pub.close()
    good = tmp_path / "a" / "state"
    original = (good / JOURNAL).read_bytes()
    rng = random.Random(32)
    outcomes = set()
    for n in range(60):
        body = bytearray(original)
        kind = n % 4
        if kind == 0:
            for _ in range(rng.randint(1, 5)):
                body[rng.randrange(len(body))] = rng.randrange(256)
        elif kind == 1:
            body = body[: rng.randrange(len(body))]
        elif kind == 2:
            at = rng.randrange(len(body))
            body = body[:at] + body[at:][: rng.randrange(1, 200)] + body[at:]
        else:
            lines = bytes(body).splitlines(keepends=True)
            rng.shuffle(lines)
            body = bytearray(b"".join(lines))
        folder = tmp_path / f"d{n}"
        shutil.copytree(good, folder / "state")
        (folder / "state" / JOURNAL).write_bytes(bytes(body))
        caplog.clear()
        b, _c = journaled(folder)
        assert b.snapshots is not None
        restored = b.snapshots.restore()
        outcomes.add(restored)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == (0 if restored else 1), errors
        if restored:
            for v in b.pub.variants():
                rendered = b.playlists.media_playlist(v)
                assert rendered is None or rendered.body.startswith(b"#EXTM3U\n")
        await b.pub.close()
    assert outcomes == {True, False}  # both ways were taken


def test_a_list_the_last_line_no_longer_holds_is_gone_and_one_it_holds_is_whole(tmp_path: Path) -> None:
    """Replay at the journal's own level (a Tail followed through lines)."""
    state = JournaledState(tmp_path)
    a, b = Log(), Log()
    for n in range(6):
        a.add(json.dumps(f"a{n}"))
        b.add(json.dumps(f"b{n}"))
        a.drop_to(n - 2)
        doc: dict[str, Any] = {"x": {"a": a.tail(), "n": n}}
        if n < 4:
            doc["y"] = {"b": b.tail()}
        state.write_prepared(state.prepare(doc))
    state.close()
    assert state.compactions == 1  # one full state.json, then lines
    loaded = JournaledState(tmp_path).load()
    assert loaded is not None and loaded["x"] == {"a": [f"a{n}" for n in range(3, 6)], "n": 5}
    assert "y" not in loaded
