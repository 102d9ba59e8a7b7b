"""The one Owncast writer (broadcaster/demo/owncast_files.py) writes Owncast's folder in Owncast's form:
segment first, then the rolling playlist in place; the offline tail by a move; the cleanup keeps the newest."""

from __future__ import annotations

import os
from pathlib import Path

from broadcaster.demo.owncast_files import OwncastFolder, listed_segments, write_in_place
from tests.support.hls_checker import VariantSetChecker


def test_a_slot_writes_the_segment_then_its_playlist_in_a_rolling_list(tmp_path: Path) -> None:
    files = OwncastFolder(tmp_path / "hls", (0, 1), shortid="a-B_c", list_size=3)
    checker = VariantSetChecker()
    for n in range(5):
        name = files.slot({0: b"zero", 1: b"one"}, at=1_800_000_000.0 + n)
        assert name == f"stream-a-B_c-{n}.ts"
        for v in (0, 1):
            text = files.playlist(v).read_text()
            assert checker.check(str(v), text) == []  # the HLS rules hold for each version
            assert listed_segments(text) == [f"stream-a-B_c-{i}.ts" for i in range(max(0, n - 2), n + 1)]
            assert f"#EXT-X-MEDIA-SEQUENCE:{max(0, n - 2)}\n" in text and "#EXT-X-PROGRAM-DATE-TIME:" in text
    assert (files.folder(1) / "stream-a-B_c-4.ts").read_bytes() == b"one"


def test_in_place_means_the_same_inode_and_cuts_are_where_a_reader_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "stream.m3u8"
    write_in_place(path, "first version\n")
    inode = os.stat(path).st_ino
    write_in_place(path, "second\n", cuts=[3])
    assert os.stat(path).st_ino == inode and path.read_text() == "second\n"  # no temp file, no rename
    write_in_place(path, b"0123456789", piece=4, stop_after=6)  # the writer is still busy
    assert path.read_bytes() == b"012345"


def test_the_offline_tail_ends_the_list_and_the_cleanup_keeps_the_newest(tmp_path: Path) -> None:
    files = OwncastFolder(tmp_path / "hls", (0,), shortid="x", list_size=2)
    for n in range(6):
        files.slot(b"ts")
        os.utime(files.folder(0) / files.name(n), ns=(n * 10**9, n * 10**9))  # mtime order = number order
    assert files.cleanup(3) == 3
    assert sorted(p.name for p in files.folder(0).glob("*.ts")) == [files.name(n) for n in (3, 4, 5)]
    (tmp_path / "tmp").mkdir()
    files.offline(b"bars", tmp_path / "tmp")
    text = files.playlist(0).read_text()
    assert text.endswith("stream-x-5.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:8.000000,\noffline.ts\n#EXT-X-ENDLIST\n"), text
    assert (files.folder(0) / "offline.ts").read_bytes() == b"bars"
