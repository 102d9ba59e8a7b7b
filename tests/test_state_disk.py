"""STATE_DIR full or read-only, then a restart: no media sequence number is served twice. Every version
shown, before and after, goes through one VariantSetChecker; the disk fails at the seam (ENOSPC, EROFS)
and, where the test may mount one, on a real small tmpfs."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.playlist import hls
from broadcaster.state.served import ServedRecord
from tests.support.disks import Disk, SeamDisk, TmpfsDisk, small_tmpfs
from tests.support.saved_state import VARIANTS, check_all, listed, numbers, started_afresh, stream
from tests.support.waiting import until
from tests.support.world import World

NAMES = [f"stream-a-{i}.ts" for i in range(40)]


@pytest.fixture(params=["seam", "tmpfs"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    if request.param == "seam":
        (tmp_path / "state").mkdir()
        yield SeamDisk(tmp_path / "state")
        return
    with small_tmpfs(tmp_path / "state") as folder:
        d = TmpfsDisk(folder)
        try:
            yield d
        finally:
            d.heal()


@pytest.fixture
def seam(tmp_path: Path) -> SeamDisk:
    """STATE_DIR (tmp_path) failing at the seam, beside Owncast's folder tmp_path/hls."""
    (tmp_path / "hls").mkdir()
    return SeamDisk(tmp_path)


def first_read(w: World, upto: int) -> None:
    """What Owncast's playlists list when a restarted service reads them first: its last ten segments."""
    w.owncast_lists(VARIANTS, *NAMES[max(0, upto - 10):upto])


def continues_exactly(a: World, b: World, count: int) -> None:
    """Across a's run and b's: NAMES[:count] each under one number, consecutive, no discontinuity in b."""
    check_all(a, b)
    every = numbers(a.playlists.shown + b.playlists.shown)
    for v in VARIANTS:
        assert [every[v][n] for n in sorted(every[v])] == NAMES[0:count]
        assert sorted(every[v]) == list(range(min(every[v]), min(every[v]) + count))
    assert not any("#EXT-X-DISCONTINUITY\n" in text for _, text in b.playlists.shown)


@pytest.mark.parametrize("stop", ["sigterm", "crash"])
@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EROFS], ids=["full", "read-only"])
async def test_a_failing_state_dir_then_a_restart_never_serves_a_number_twice(
        tmp_path: Path, disk: Disk, fault: int, stop: str) -> None:
    hls_dir = tmp_path / "hls"
    hls_dir.mkdir()
    if isinstance(disk, TmpfsDisk) and fault == errno.EROFS:
        await _read_only_holds_then_continues_exactly(hls_dir, disk, stop)
        return
    a = await started_afresh(World(hls_dir, state=disk.state_file()))
    await stream(a, 0, 4)
    disk.fail(fault)
    # The stream goes on within the reserve, each version recorded in STATE_DIR/served (written in place).
    await stream(a, 4, 9)
    ok, body = a.health()
    assert not ok and f"cannot save state ({os.strerror(fault)})" in str(body["status"])
    assert a.sample("state_save_failing") == 1 and (a.sample("state_save_failures_total") or 0) >= 5
    await a.pub.close()
    if stop == "sigterm":
        assert a.snapshots is not None and a.snapshots.save_now(a.pub.snapshot()) == os.strerror(fault)
    before = numbers(a.playlists.shown)

    # The restart, the disk still failing: the stream goes on above every number shown, within the reserve.
    b = World(hls_dir, state=disk.state_file())
    assert b.snapshots is not None and b.snapshots.restore() and b.snapshots.disk_clean is False
    assert b.playlists.media_playlist(0) is None  # the old window is not served again: it went back
    await b.pub.start()
    first_read(b, 11)  # a-9 and a-10 were written while the service was down
    for name in NAMES[11:14]:  # the new window is shown once three target durations long
        b.owncast_lists(VARIANTS, name)
    await until(lambda: listed(b, NAMES[13]), "the new window is shown, the disk still failing")
    await stream(b, 14, 15)
    ok, body = b.health()
    assert not ok and f"cannot save state ({os.strerror(fault)})" in str(body["status"])
    assert not b.release.held and b.sample("listing_held") == 0 and b.sample("state_save_failing") == 1
    disk.heal()
    await stream(b, 15, 16)
    assert b.health()[0] and b.sample("listing_held") == 0 and b.sample("state_save_failing") == 0
    await b.pub.close()
    assert b.snapshots.save_now(b.pub.snapshot()) is None

    # A clean stop, then a start: exactly where it was.
    c = World(hls_dir, state=disk.state_file())
    assert c.snapshots is not None and c.snapshots.restore() and c.snapshots.disk_clean
    await c.pub.start()
    first_read(c, 17)
    await until(lambda: listed(c, NAMES[16]), "the next segment is listed")
    await c.pub.close()

    check_all(a, b, c)  # same number same URI, same URI same number, never back, across both restarts
    after = numbers(b.playlists.shown + c.playlists.shown)
    for v in VARIANTS:
        assert min(after[v]) > max(before[v])
        assert set(after[v].values()).isdisjoint(before[v].values())  # nothing listed again, renumbered
        # Nothing Owncast listed at the first read after the restart is listed: it may have been served.
        assert sorted(after[v].values()) == NAMES[11:17]
        got = sorted(after[v])
        assert got == list(range(got[0], got[0] + len(got)))  # continuous after the jump, clean restart too
    # The first version after the restart: its first segment carries the discontinuity.
    head = b.playlists.shown[0][1].split("#EXT-X-PROGRAM-DATE-TIME")[0]
    assert head.rstrip().endswith("#EXT-X-DISCONTINUITY")
    # The jump is what the versions shown unsaved used (4..8) and their discontinuities, not a day.
    for v in VARIANTS:
        first_saved = min(before[v])
        assert min(after[v]) == hls.continue_above(first_saved + 9, first_saved + 4, [0, 0])[0]


async def _read_only_holds_then_continues_exactly(hls_dir: Path, disk: Disk, stop: str) -> None:
    """Read-only: nothing records how far versions went, so none goes past the state on disk; the start
    after it continues exactly, Owncast's backlog and all."""
    a = await started_afresh(World(hls_dir, state=disk.state_file()))
    await stream(a, 0, 4)
    disk.fail(errno.EROFS)
    a.owncast_lists(VARIANTS, NAMES[4])
    await until(lambda: a.release.held, "new versions are held back")
    assert not listed(a, NAMES[4]) and a.sample("listing_held") == 1
    await a.pub.close()
    if stop == "sigterm":
        assert a.snapshots is not None and a.snapshots.save_now(a.pub.snapshot()) == os.strerror(errno.EROFS)
    disk.heal()
    b = World(hls_dir, state=disk.state_file())
    assert b.snapshots is not None and b.snapshots.restore()
    assert listed(b, NAMES[3])  # the same window, at once
    await b.pub.start()
    first_read(b, 8)  # NAMES[5:8] were written while the service was down
    await until(lambda: listed(b, NAMES[7]), "the backlog is listed")
    await b.pub.close()
    continues_exactly(a, b, 8)


async def test_restarts_on_a_full_state_dir_go_on_within_the_reserve(
        tmp_path: Path, seam: SeamDisk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the reserve is used up, versions are held back until a save works."""
    monkeypatch.setattr(hls, "SEQUENCE_RESERVE", 40)
    a = await started_afresh(World(tmp_path / "hls", state=seam.state_file()))
    await stream(a, 0, 4)  # saved with next 4: numbers below 44 reserved
    reserve = min(numbers(a.playlists.shown)[0]) + 4 + 40
    seam.fail(errno.ENOSPC)
    await stream(a, 4, 8)
    await a.pub.close()  # killed
    worlds, upto = [a], 8
    # Killed once more, the disk full all along (each start skips as many numbers as were shown past it).
    for restart in range(2):
        w = World(tmp_path / "hls", state=seam.state_file())
        assert w.snapshots is not None and w.snapshots.restore() and not w.snapshots.disk_clean
        await w.pub.start()
        first_read(w, upto + 1)
        for name in NAMES[upto + 1:upto + 4]:
            w.owncast_lists(VARIANTS, name)
        await until(lambda: listed(w, NAMES[upto + 3]), "a restart on a full disk lists new segments")
        assert not w.health()[0] and not w.release.held
        worlds.append(w)
        upto += 4
        if restart < 1:
            await w.pub.close()
    last = worlds[-1]
    while not last.release.held:  # on until the reserve is used up
        assert upto < len(NAMES) - 1, "never held back"
        last.owncast_lists(VARIANTS, NAMES[upto])
        await until(lambda: listed(last, NAMES[upto]) or last.release.held, "listed or held back")
        upto += 1
    held = NAMES[upto - 1]
    assert not listed(last, held)
    shown = numbers([s for w in worlds for s in w.playlists.shown])
    assert max(max(shown[v]) for v in VARIANTS) < reserve  # nothing past the reserve of the state on disk
    seam.heal()
    await until(lambda: listed(last, held), "shown once a save works")
    await last.pub.close()
    check_all(*worlds)  # one number one segment, never back, across both restarts


async def test_when_the_reserve_is_used_up_new_versions_wait_for_a_save(
        tmp_path: Path, seam: SeamDisk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hls, "SEQUENCE_RESERVE", 3)
    w = await started_afresh(World(tmp_path / "hls", state=seam.state_file()))
    await stream(w, 0, 2)  # the version with number 1 saved next = 2: reserved below 5
    seam.fail(errno.ENOSPC)
    await stream(w, 2, 5)  # numbers 2, 3, 4
    w.owncast_lists(VARIANTS, NAMES[5])
    await until(lambda: w.release.held, "held back")
    assert not listed(w, NAMES[5]) and NAMES[5] not in [n for _, _, n in w.listed]  # not shown, not told
    ok, body = w.health()
    assert "held back" in str(body["status"]) and "No space left on device" in str(body["status"])
    seam.heal()
    await until(lambda: listed(w, NAMES[5]), "shown once saved")
    assert [n for v, _, n in w.listed if v == 0] == NAMES[0:6]  # told once each, in order
    await w.pub.close()
    check_all(w)


@pytest.mark.parametrize("record", ["works", "fails"])
async def test_a_clean_state_then_a_disk_failing_from_the_start(
        tmp_path: Path, seam: SeamDisk, monkeypatch: pytest.MonkeyPatch, record: str) -> None:
    """A clean state, then a disk that cannot save: new numbers are shown once STATE_DIR/served records them
    (a crash continues above); when nothing can be recorded, none is (a crash continues exactly)."""
    a = await started_afresh(World(tmp_path / "hls", state=seam.state_file()))
    await stream(a, 0, 3)
    await a.pub.close()
    assert a.snapshots is not None and a.snapshots.save_now(a.pub.snapshot()) is None
    seam.fail(errno.EROFS)
    if record == "fails":
        def refused(self: ServedRecord, lease: str, high: int) -> None:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        monkeypatch.setattr(ServedRecord, "write", refused)
    b = World(tmp_path / "hls", state=seam.state_file())
    assert b.snapshots is not None and b.snapshots.restore() and b.snapshots.disk_clean
    assert listed(b, NAMES[2])  # the window continues exactly
    await b.pub.start()
    b.owncast_lists(VARIANTS, *NAMES[0:4])
    if record == "fails":
        await until(lambda: b.release.held, "held back")
        assert not listed(b, NAMES[3])
    else:
        await until(lambda: listed(b, NAMES[3]), "shown, recorded")
        await stream(b, 4, 5)
        assert not b.release.held and not b.health()[0]
    await b.pub.close()  # a crash
    seam.heal()
    monkeypatch.undo()
    c = World(tmp_path / "hls", state=seam.state_file())
    assert c.snapshots is not None and c.snapshots.restore()
    assert c.snapshots.disk_clean is (record == "fails")
    await c.pub.start()
    upto = 5 if record == "fails" else 9
    c.owncast_lists(VARIANTS, *NAMES[0:upto])
    for name in NAMES[upto:upto + 3]:
        c.owncast_lists(VARIANTS, name)
    await until(lambda: listed(c, NAMES[upto + 2]), "listed")
    await c.pub.close()
    check_all(a, b, c)
    shown_c = [n for _, n in sorted(numbers(c.playlists.shown)[0].items())]
    if record == "fails":
        assert shown_c[-6:] == NAMES[2:8]  # exactly on, the backlog and all
    else:
        assert shown_c == NAMES[upto:upto + 3]  # above what b showed, after a discontinuity
        assert min(numbers(c.playlists.shown)[0]) > max(numbers(b.playlists.shown)[0])


async def test_a_crash_with_a_healthy_disk_continues_exactly(tmp_path: Path, seam: SeamDisk) -> None:
    """Nothing shown past the last save: the start after kill -9 continues exactly, backlog and all."""
    a = await started_afresh(World(tmp_path / "hls", state=seam.state_file()))
    await stream(a, 0, 3)
    await a.pub.close()  # killed: no save at a clean stop
    b = World(tmp_path / "hls", state=seam.state_file())
    assert b.snapshots is not None and b.snapshots.restore()
    assert listed(b, NAMES[2])  # the same window, at once
    await b.pub.start()
    first_read(b, 4)  # NAMES[3] was written while the service was down
    for name in NAMES[4:7]:
        b.owncast_lists(VARIANTS, name)
    await until(lambda: listed(b, NAMES[6]), "listed")
    await b.pub.close()
    continues_exactly(a, b, 7)


async def test_a_crash_after_versions_shown_unsaved_continues_above_the_highest_recorded(
        tmp_path: Path, seam: SeamDisk, caplog: pytest.LogCaptureFixture) -> None:
    """Torn in one slot, the other still says; damaged whole, set aside with one line (the reserve)."""
    a = await started_afresh(World(tmp_path / "hls", state=seam.state_file()))
    await stream(a, 0, 3)  # numbers 0..2 saved: next 3
    seam.fail(errno.ENOSPC)
    await stream(a, 3, 5)  # 3 and 4 shown unsaved, each recorded first
    await a.pub.close()  # killed
    served = tmp_path / "served"
    raw = bytearray(served.read_bytes())
    start = min(numbers(a.playlists.shown)[0])
    # The slot holding 4 torn by a crash (the slot written last holds the highest).
    torn = bytes(raw)
    slot = 0 if b" %d " % (start + 4) in torn[:512] else 512
    raw[slot + 30:slot + 40] = b"#" * 10
    served.write_bytes(bytes(raw))
    b = World(tmp_path / "hls", state=seam.state_file())
    assert b.snapshots is not None and b.snapshots.restore() and b.snapshots.shown_past == start + 3
    await b.pub.close()
    # Damaged whole: set aside, one line, the reserve.
    served.write_bytes(b"garbage")
    c = World(tmp_path / "hls", state=seam.state_file())
    with caplog.at_level(logging.ERROR):
        assert c.snapshots is not None and c.snapshots.restore()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "served" in r.getMessage()]
    assert c.release.limit == start + 3 + hls.SEQUENCE_RESERVE
    await c.pub.close()
