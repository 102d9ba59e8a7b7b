"""The VM's copies of finished segments (broadcaster/steering/copies.py): kept under names of its own,
bounded in bytes and age, servable only once listed, a former run's files cleared, a folder it cannot
trust refused."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from broadcaster.steering.copies import DISK_RESERVE, FOLDER, Copies
from tests.support.fakes import Clock


def make(tmp_path: Path, max_bytes: int = 10_000, keep_for: float = 60.0) -> tuple[Copies, Clock]:
    clock = Clock()
    copies = Copies(tmp_path, max_bytes=max_bytes, keep_for=keep_for, clock=clock, wall=lambda: 1_700_000_000.4)
    copies.open()
    return copies, clock


def files(tmp_path: Path) -> list[str]:
    return sorted(os.listdir(tmp_path / FOLDER))


def test_a_copy_is_kept_under_a_name_of_its_own_and_read_back(tmp_path: Path) -> None:
    copies, _ = make(tmp_path)
    copy = copies.keep("live/0/stream-abc-1.ts", b"x" * 1000)
    assert copy is not None and copy.size == 1000 and copy.content_type == "video/mp2t"
    assert copy.modified == 1_700_000_000.0 and copy.etag.startswith('"') and not copy.listed
    assert files(tmp_path) == [copy.name] and "stream" not in copy.name
    assert copies.read(copy) == b"x" * 1000
    assert copies.servable("live/0/stream-abc-1.ts") is None  # not listed yet
    copies.listed("live/0/stream-abc-1.ts")
    served = copies.servable("live/0/stream-abc-1.ts")
    assert served is not None and served.listed and served.etag == copy.etag and served.name == copy.name
    assert (os.stat(tmp_path / FOLDER).st_mode & 0o777) == 0o700


def test_what_is_not_a_segment_is_not_kept(tmp_path: Path) -> None:
    copies, _ = make(tmp_path)
    assert copies.keep("live/0/stream.m3u8", b"#EXTM3U") is None
    assert copies.keep("live/0/a.ts", b"") is None
    assert len(copies) == 0


def test_past_the_byte_cap_the_oldest_go_first(tmp_path: Path) -> None:
    copies, clock = make(tmp_path, max_bytes=2500)
    kept = [copies.keep(f"live/0/s{i}.ts", bytes([i]) * 1000) for i in range(4)]
    assert all(kept)
    assert [k for k in ("live/0/s0.ts", "live/0/s1.ts", "live/0/s2.ts", "live/0/s3.ts") if copies.get(k)] == \
        ["live/0/s2.ts", "live/0/s3.ts"]
    assert copies.total_bytes == 2000 and copies.evicted == 2 and len(files(tmp_path)) == 2
    first = kept[0]
    assert first is not None
    with pytest.raises(FileNotFoundError):
        copies.read(first)


def test_copies_past_their_time_go(tmp_path: Path) -> None:
    copies, clock = make(tmp_path, keep_for=60)
    copies.keep("live/0/old.ts", b"o" * 10)
    clock.t += 61
    copies.keep("live/0/new.ts", b"n" * 10)
    assert copies.get("live/0/old.ts") is None and copies.get("live/0/new.ts") is not None
    assert copies.evicted == 0  # its time was up: not a loss


def test_an_init_section_lives_as_long_as_the_segments_that_need_it(tmp_path: Path) -> None:
    """An fMP4 run's init section is kept once, before the run's first segment, and every segment after
    it lists it (EXT-X-MAP): its copy goes keep_for after the last segment of its run kept in its folder,
    not after its own keeping (a few minutes into any fMP4 stream the VM's pathway answered 404 for it
    while players were steered there), and the byte cap takes the segments before it."""
    copies, clock = make(tmp_path, max_bytes=2500, keep_for=10)
    first = "live/0/stream-a-init_0.mp4"
    copies.keep(first, b"i" * 100)
    copies.listed(first)
    for n in range(30):
        clock.t += 1
        copies.keep(f"live/1/stream-a-{n}.m4s", b"t" * 10)  # another variant's: its own init section
        copies.keep(f"live/0/stream-a-{n}.m4s", b"s" * 400)
        assert copies.servable(first) is not None, n
    assert copies.evicted > 0  # the byte cap took segments meanwhile
    clock.t += 1
    second = "live/0/stream-b-init_0.mp4"  # the next transcoder run
    copies.keep(second, b"j" * 100)
    for n in range(10):
        clock.t += 1
        copies.keep(f"live/0/stream-b-{n}.m4s", b"s" * 10)
        # the former run's segments are listed for keep_for after their keeping, and their init with them
        last = copies.get("live/0/stream-a-29.m4s")
        assert (copies.get(first) is not None) == (n < 9) == (last is not None), n
        assert copies.get(second) is not None


def test_a_key_kept_again_is_replaced_and_stays_listed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    copies, _ = make(tmp_path)
    copies.keep("live/0/a.ts", b"first")
    copies.listed("live/0/a.ts")
    second = copies.keep("live/0/a.ts", b"second")
    assert second is not None and second.listed and copies.read(second) == b"second"
    assert len(files(tmp_path)) == 1 and copies.total_bytes == 6
    assert "replaced by other bytes" in caplog.text


def test_a_former_runs_files_are_cleared_at_start_and_all_at_stop(tmp_path: Path) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir()
    (folder / "000000000001.seg").write_bytes(b"stale")
    (folder / "000000000002.seg.tmp").write_bytes(b"half")
    (folder / "note.txt").write_text("not ours")
    copies, _ = make(tmp_path)
    assert files(tmp_path) == ["note.txt"]
    copies.keep("live/0/a.ts", b"a")
    copies.close()
    assert files(tmp_path) == ["note.txt"] and len(copies) == 0
    assert copies.keep("live/0/b.ts", b"b") is None  # closed


def test_a_symlink_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "000000000001.seg").write_bytes(b"someone else's")
    state = tmp_path / "state"
    state.mkdir()
    (state / FOLDER).symlink_to(elsewhere)
    copies = Copies(state, max_bytes=1000, keep_for=60)
    with pytest.raises(OSError):
        copies.open()
    assert os.listdir(elsewhere) == ["000000000001.seg"]


def test_a_copy_that_cannot_be_written_is_counted_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    copies, _ = make(tmp_path)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    assert copies.keep("live/0/a.ts", b"a") is None
    assert copies.keep("live/0/b.ts", b"b") is None
    monkeypatch.undo()
    assert copies.failures == 2 and caplog.text.count("cannot keep a copy") == 1
    assert "No space left on device" in caplog.text
    assert files(tmp_path) == [] and len(copies) == 0  # no half file left behind
    assert copies.keep("live/0/c.ts", b"c") is not None


def test_the_copies_leave_the_disk_to_the_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """STATE_DIR's disk nearly full: the oldest copies go first, then none is kept (saves come first)."""
    copies, _ = make(tmp_path, max_bytes=1 << 30)
    for i in range(3):
        assert copies.keep(f"live/0/s{i}.ts", b"x" * 1000) is not None
    free = {"bytes": DISK_RESERVE + 8192}  # room for one more copy above the reserve (blocks of 4 KiB)
    real = os.statvfs

    def statvfs(fd: int) -> object:
        st = real(fd)
        return type("S", (), {"f_bavail": free["bytes"] // st.f_frsize, "f_frsize": st.f_frsize,
                              "f_blocks": 1000})()

    monkeypatch.setattr(os, "statvfs", statvfs)
    assert copies.keep("live/0/s3.ts", b"x" * 1000) is not None
    free["bytes"] = DISK_RESERVE  # no room: what was kept goes, oldest first, and still no room
    assert copies.keep("live/0/s4.ts", b"x" * 1000) is None
    assert len(copies) == 0 and copies.failures == 1 and "nearly full" in caplog.text
