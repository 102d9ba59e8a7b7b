"""A segment closed with less media than its playlist names is not finished (issue 80): a writer that
closes a file on a packet boundary, lets its playlist name it and opens it again for the rest is waited
for, so the half is never listed (broadcaster/source/spans.py, read by source/writes.py).

The media are real ffmpeg output: whole segments of ffmpeg's hls muxer span their #EXTINF, halves do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import m3u8
import pytest

from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.metrics import Metrics
from broadcaster.source import inotify, spans
from broadcaster.source.watcher import HlsWatcher
from broadcaster.source.writes import Finish, Writes
from tests.support.fakes import Sink
from tests.support.odd_writers import OddWriter
from tests.support.owncast_writer import real_ts_segment
from tests.support.waiting import until

KERNEL = pytest.mark.skipif(not inotify.available(), reason="inotify is Linux only")
_PATHS = [pytest.param(True, id="inotify", marks=KERNEL), pytest.param(False, id="watchfiles")]


@pytest.fixture(scope="module")
def ts_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return real_ts_segment(tmp_path_factory.mktemp("ts"))


@pytest.fixture(scope="module")
def hls_segments(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, float]]:
    """ffmpeg's hls muxer as Owncast runs it (B-frames, a keyframe every 2 s, audio): (bytes, #EXTINF)."""
    out = tmp_path_factory.mktemp("hls")
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc=size=320x180:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
         "-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "60", "-b:v", "2M",
         "-c:a", "aac", "-f", "hls", "-hls_time", "2", "-hls_list_size", "0", str(out / "stream.m3u8")],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    playlist = m3u8.load(str(out / "stream.m3u8"))
    return [((out / s.uri).read_bytes(), float(s.duration)) for s in playlist.segments]


def held(data: bytes) -> float | None:
    tail = len(data) - min(len(data), spans.HEAD) // spans.TS_PACKET * spans.TS_PACKET
    return spans.seconds(data[: spans.HEAD], data[tail:])


def test_whole_segments_span_their_extinf_and_halves_fall_short(hls_segments: list[tuple[bytes, float]]) -> None:
    assert len(hls_segments) >= 5
    for data, extinf in hls_segments:
        whole = held(data)
        assert whole is not None and not spans.short_of(whole, extinf), (whole, extinf)
        half = data[: len(data) // 2 // spans.TS_PACKET * spans.TS_PACKET]
        assert spans.short_of(held(half), extinf), (held(half), extinf)


def test_a_file_read_through_its_descriptor_spans_the_same(tmp_path: Path, ts_bytes: bytes) -> None:
    path = tmp_path / "seg.ts"
    path.write_bytes(ts_bytes * 8)  # larger than two HEADs: head and tail read apart
    fd = os.open(path, os.O_RDONLY)
    try:
        assert spans.read_seconds(fd, len(ts_bytes) * 8) == held(ts_bytes * 8)
    finally:
        os.close(fd)


def test_bytes_without_timestamps_are_unknown_never_short() -> None:
    packets = b"\x47" * 188 * 600  # sync bytes only: no PES header anywhere
    assert held(packets) is None
    assert not spans.short_of(None, 2.0)


@contextlib.asynccontextmanager
async def watching(root: Path, kernel: bool) -> AsyncIterator[Writes]:
    """Writes fed by a running HlsWatcher (inotify or watchfiles) on `root`, once its watch has begun."""
    (root / "0").mkdir(exist_ok=True)
    w = Writes(root, kernel=kernel)
    watcher = HlsWatcher(root, Sink(), Metrics(), kernel=kernel, writes=w)
    await watcher.start()
    try:
        if kernel:
            await until(lambda: w._exact, "the kernel watch began")
        yield w
    finally:
        await watcher.stop()


# -- the wait: a file closed short of its #EXTINF is waited for, a whole one is not ------------------------


@pytest.mark.parametrize("kernel", _PATHS)
@pytest.mark.parametrize("kind", ["appended", "rewritten"])
async def test_a_file_closed_on_a_packet_boundary_short_of_its_extinf_waits_for_its_writer(
    tmp_path: Path, ts_bytes: bytes, kernel: bool, kind: str
) -> None:
    """Closed with half its bytes, no writer, whole packets: every other sign says finished. Named with its
    #EXTINF (1 s), it is waited for until its writer has written it whole."""
    async with watching(tmp_path, kernel) as w:
        path = tmp_path / "0" / "stream-a-0.ts"
        writer = OddWriter(kind, ts_bytes)
        writer.begin(path)
        w.named(path, 1.0)
        wait = asyncio.ensure_future(w.finished(path, 30))
        try:
            await until(lambda: w.waiting == 1 or wait.done(), "the upload asked")
            for _ in range(12):  # 0.6 s of looks, over twice watchfiles' quiet period
                await asyncio.wait({wait}, timeout=0.05)
                assert not wait.done(), f"{wait.result()} with {path.stat().st_size} of {len(ts_bytes)} bytes"
            writer.finish()
            assert await wait is Finish.WAITED
            assert path.read_bytes() == ts_bytes
        finally:
            wait.cancel()
            writer.close()


@pytest.mark.parametrize("kernel", _PATHS)
async def test_a_whole_segment_named_with_its_extinf_is_finished_at_once(
    tmp_path: Path, ts_bytes: bytes, kernel: bool
) -> None:
    """Owncast's own files cost nothing more: written whole and closed, they are READY when asked."""
    (tmp_path / "0").mkdir()
    w = Writes(tmp_path, kernel=kernel, quiet=0.0)
    path = tmp_path / "0" / "stream-a-0.ts"
    path.write_bytes(ts_bytes)
    w.named(path, 1.0)
    assert await w.finished(path, 5) is Finish.READY
