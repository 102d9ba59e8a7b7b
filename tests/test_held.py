"""What the service holds of each finished segment (broadcaster/vm/held.py): the version the first
read saw, Owncast's own file while it is that version, a copy only after a failed upload and only until
every bucket has it, under names of its own, bounded in bytes, a former run's copies cleared, a folder it
cannot trust refused, the disk left to the state."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from broadcaster.vm.held import DISK_RESERVE, FOLDER, SETTLED_FOR, Held, HeldFile
from broadcaster.files import Stamp
from tests.support.fakes import Clock


def make(tmp_path: Path, max_bytes: int = 10_000, keep_for: float = 600.0,
         buckets: tuple[str, ...] = ("bucket",)) -> tuple[Held, Clock]:
    clock = Clock()
    (tmp_path / "hls" / "0").mkdir(parents=True, exist_ok=True)
    (tmp_path / "state").mkdir(exist_ok=True)
    held = Held(tmp_path / "hls", tmp_path / "state", max_bytes=max_bytes, keep_for=keep_for, buckets=buckets,
                clock=clock)
    held.open()
    return held, clock


def owncast_writes(tmp_path: Path, name: str, body: bytes) -> tuple[str, tuple[str, str], Stamp]:
    path = tmp_path / "hls" / "0" / name
    path.write_bytes(body)
    return f"live/0/{name}", ("0", name), Stamp.of(os.stat(path))


def hold(held: Held, tmp_path: Path, name: str, body: bytes) -> HeldFile:
    key, parts, stamp = owncast_writes(tmp_path, name, body)
    h = held.first(key, parts, stamp)
    assert h is not None
    return h


def copies(tmp_path: Path) -> list[str]:
    return sorted(os.listdir(tmp_path / "state" / FOLDER))


def test_owncasts_file_is_the_segment_while_it_is_the_version_read(tmp_path: Path) -> None:
    held, _ = make(tmp_path)
    h = hold(held, tmp_path, "a.ts", b"\x47" * 188)
    assert held.read(h) == b"\x47" * 188 and held.body("live/0/a.ts") == b"\x47" * 188
    assert h.content_type == "video/mp2t" and h.size == 188 and h.etag.startswith('"')
    assert copies(tmp_path) == []  # nothing written
    (tmp_path / "hls" / "0" / "a.ts").write_bytes(b"\x47" * 376)  # rewritten: another version
    with pytest.raises(FileNotFoundError):
        held.read(h)
    assert held.body("live/0/a.ts") is None
    (tmp_path / "hls" / "0" / "a.ts").unlink()
    assert held.body("live/0/a.ts") is None


def test_a_failed_upload_keeps_a_copy_until_every_bucket_has_it(tmp_path: Path) -> None:
    held, _ = make(tmp_path, buckets=("bucket", "backup"))
    body = b"\x47" * 188
    h = hold(held, tmp_path, "a.ts", body)
    assert held.keep("live/0/a.ts", body)
    assert held.keep("live/0/a.ts", body)  # once: kept already
    assert len(copies(tmp_path)) == 1 and held.total_bytes == 188 and held.kept == 1
    (tmp_path / "hls" / "0" / "a.ts").unlink()  # Owncast's cleanup: the copy is the segment now
    assert held.body("live/0/a.ts") == body
    assert held.read(held.get("live/0/a.ts") or h) == body
    held.landed("live/0/a.ts", "bucket")
    assert len(copies(tmp_path)) == 1  # the second bucket has not got it yet
    held.landed("live/0/a.ts", "backup")
    assert copies(tmp_path) == [] and held.total_bytes == 0 and held.body("live/0/a.ts") is None
    assert not held.keep("live/0/a.ts", b"other bytes")  # not the version held


def test_the_version_held_held_again_keeps_its_copy_and_one_not_held_is_held_as_its_upload_sent_it(
        tmp_path: Path) -> None:
    """Held twice (an upload in flight held when players come to the VM, after its failed attempt kept a
    copy): the same version keeps its copy, which outlives Owncast's file. An upload that held nothing
    first holds what its failed attempt sent (hold_kept)."""
    held, _ = make(tmp_path)
    body = b"\x47" * 188
    key, parts, stamp = owncast_writes(tmp_path, "a.ts", body)
    assert held.hold_kept(key, parts, stamp, body)
    assert held.first(key, parts, stamp) == held.get(key) and held.copies == 1
    (tmp_path / "hls" / "0" / "a.ts").unlink()
    assert held.held_body(key) == (body, stamp)
    assert held.at_hand(key, parts) == held.get(key)  # Owncast's file gone: the copy
    assert held.at_hand("live/0/b.ts", ("0", "b.ts")) is None  # neither


def test_the_vm_holds_no_version_of_a_file_a_writer_has_open_and_keeps_the_version_it_held(tmp_path: Path) -> None:
    """at_hand holds Owncast's file as it is, but not while a writer has it open (the kernel's lease says):
    a file cut short mid-write is never held and served. Once it is finished, its new version is."""
    from broadcaster.source import leases

    held, _ = make(tmp_path)
    held._writers = leases.writers  # as the service passes it
    key, parts, _ = owncast_writes(tmp_path, "a.ts", b"\x47" * 188)
    path = tmp_path / "hls" / "0" / "a.ts"
    with open(path, "ab"):  # written again now
        assert held.at_hand(key, parts) is None and len(held) == 0
    first = held.at_hand(key, parts)
    assert first is not None and first.size == 188
    with open(path, "ab") as writer:
        writer.write(b"\x47" * 188)
        writer.flush()
        assert held.at_hand(key, parts) is None  # a new version, still being written: none
        assert held.get(key) == first  # the version held stays (its file no longer is it: read refuses it)
    now = held.at_hand(key, parts)
    assert now is not None and now.size == 376 and held.read(now) == b"\x47" * 376


def test_past_the_byte_cap_the_oldest_copies_go_first(tmp_path: Path) -> None:
    held, _ = make(tmp_path, max_bytes=500)
    for name in ("a.ts", "b.ts", "c.ts"):
        hold(held, tmp_path, name, b"\x47" * 188)
        assert held.keep(f"live/0/{name}", b"\x47" * 188)
    assert held.copies == 2 and held.evicted == 1
    a = held.get("live/0/a.ts")
    assert a is not None and a.copy is None  # its copy went; Owncast's file may still serve it
    assert held.body("live/0/a.ts") == b"\x47" * 188


def test_what_every_bucket_has_is_forgotten_after_a_while_and_the_rest_after_its_life(tmp_path: Path) -> None:
    held, clock = make(tmp_path, keep_for=1000.0)
    hold(held, tmp_path, "a.ts", b"a")
    hold(held, tmp_path, "b.ts", b"b")
    held.landed("live/0/a.ts", "bucket")
    clock.t += SETTLED_FOR + 1
    hold(held, tmp_path, "c.ts", b"c")
    assert held.get("live/0/a.ts") is None and held.get("live/0/b.ts") is not None
    clock.t += 1001
    hold(held, tmp_path, "d.ts", b"d")
    assert held.get("live/0/b.ts") is None and len(held) == 1


def test_a_former_runs_copies_are_cleared_at_start_and_all_at_stop(tmp_path: Path) -> None:
    folder = tmp_path / "state" / FOLDER
    folder.mkdir(parents=True)
    (folder / "000000000001.seg").write_bytes(b"stale")
    (folder / "000000000002.seg.tmp").write_bytes(b"half")
    (folder / "note.txt").write_text("not ours")
    held, _ = make(tmp_path)
    assert copies(tmp_path) == ["note.txt"]
    hold(held, tmp_path, "a.ts", b"a")
    assert held.keep("live/0/a.ts", b"a")
    held.close()
    assert copies(tmp_path) == ["note.txt"] and len(held) == 0


def test_a_symlink_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "000000000001.seg").write_bytes(b"someone else's")
    state = tmp_path / "state"
    state.mkdir()
    (state / FOLDER).symlink_to(elsewhere)
    held = Held(tmp_path, state, max_bytes=1000, keep_for=60)
    with pytest.raises(OSError):
        held.open()
    assert os.listdir(elsewhere) == ["000000000001.seg"]


def test_a_copy_that_cannot_be_written_is_counted_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    held, _ = make(tmp_path)
    hold(held, tmp_path, "a.ts", b"a")
    hold(held, tmp_path, "b.ts", b"b")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    assert not held.keep("live/0/a.ts", b"a") and not held.keep("live/0/b.ts", b"b")
    monkeypatch.undo()
    assert held.failures == 2 and caplog.text.count("cannot keep a copy") == 1
    assert "No space left on device" in caplog.text
    assert copies(tmp_path) == []  # no half file left behind
    assert held.keep("live/0/a.ts", b"a")


def test_the_copies_leave_the_disk_to_the_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """STATE_DIR's disk nearly full: the oldest copies go first, then none is kept (saves come first)."""
    held, _ = make(tmp_path, max_bytes=1 << 30)
    for i in range(5):
        hold(held, tmp_path, f"s{i}.ts", b"x" * 1000)
    for i in range(3):
        assert held.keep(f"live/0/s{i}.ts", b"x" * 1000)
    free = {"bytes": DISK_RESERVE + 8192}  # room for one more copy above the reserve (blocks of 4 KiB)
    real = os.statvfs

    def statvfs(fd: int) -> object:
        st = real(fd)
        return type("S", (), {"f_bavail": free["bytes"] // st.f_frsize, "f_frsize": st.f_frsize,
                              "f_blocks": 1000})()

    monkeypatch.setattr(os, "statvfs", statvfs)
    assert held.keep("live/0/s3.ts", b"x" * 1000)
    free["bytes"] = DISK_RESERVE  # no room: the copies go, oldest first, and still no room
    assert not held.keep("live/0/s4.ts", b"x" * 1000)
    assert held.copies == 0 and held.failures == 1 and "nearly full" in caplog.text
