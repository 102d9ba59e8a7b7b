"""A segment closed with less media than its playlist names is not finished (source/spans.py): a writer
that closes on a packet boundary and opens it again later is waited for. Real ffmpeg output."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aiohttp
import m3u8
import pytest

from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.ledger import Ledger
from broadcaster.demo.owncast_files import MasterEntry, OwncastFolder
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.metrics import Metrics
from broadcaster.source import spans
from broadcaster.source.watcher import HlsWatcher
from broadcaster.source.writes import Finish, Writes
from tests.support.fakes import Sink
from tests.support.observe import Observer
from tests.support.odd_writers import OddWriter
from tests.support.owncast_writer import HandFedOwncast, real_ts_segment
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until
from tests.support.whole import assert_whole
from tests.support.writes_watch import PATHS, watching

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


def test_whole_segments_span_their_extinf_and_halves_fall_short(
        hls_segments: list[tuple[bytes, float]]) -> None:
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


@pytest.mark.parametrize("lease", [True, False], ids=["lease", "no-lease"])
@pytest.mark.parametrize("kernel", PATHS)
@pytest.mark.parametrize("kind", ["appended", "rewritten"])
async def test_a_file_closed_on_a_packet_boundary_short_of_its_extinf_waits_for_its_writer(
        tmp_path: Path, ts_bytes: bytes, kernel: bool, kind: str, lease: bool) -> None:
    """Half its bytes, no writer, whole packets, quiet: every other sign says finished."""
    async with watching(tmp_path, kernel, lease=lease) as w:
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


@pytest.mark.parametrize("kernel", PATHS)
async def test_a_whole_segment_named_with_its_extinf_is_finished_at_once(
        tmp_path: Path, ts_bytes: bytes, kernel: bool) -> None:
    """Owncast's own files cost nothing more: written whole and closed, they are READY when asked."""
    (tmp_path / "0").mkdir()
    w = Writes(tmp_path, kernel=kernel, quiet=0.0)
    path = tmp_path / "0" / "stream-a-0.ts"
    path.write_bytes(ts_bytes)
    w.named(path, 1.0)
    assert await w.finished(path, 5) is Finish.READY


WAIT = 20.0  # seconds the service may take for a step on a loaded machine


@pytest.mark.integration
async def test_the_service_never_serves_the_half_of_a_file_its_writer_opens_again(
        tmp_path: Path, seaweed: SeaweedS3) -> None:
    """Nothing of it listed or in the bucket meanwhile; afterwards, the writer's final bytes."""
    ledger = Ledger()
    ts = real_ts_segment(tmp_path)
    feed = HandFedOwncast(tmp_path / "hls", ts, variants=(0, 1), ledger=ledger)
    names = [feed.slot()]
    env = service_env(feed.root, seaweed, tmp_path / "state", WINDOW_SECONDS="30")
    writers: list[OddWriter] = []
    try:
        async with aiohttp.ClientSession() as http, ServiceProcess(env, tmp_path / "run") as service:
            seen = Observer(service.url, http, feed.variants)
            await seen.listed_everywhere(names[0], timeout=WAIT)
            for kind in ("appended", "rewritten"):
                writers.append(writer := OddWriter(kind, ts, ledger))
                names.append(name := feed.slot({0: writer.begin}))
                url = f"{seaweed.public_url}/live/0/{name}"
                # Mid-way: variant 1 listed the slot, and variant 0 gave it up as a gap (a target
                # duration later) rather than list the half.
                await seen.until(lambda: name in seen.names(1) and any(  # noqa: B023
                    seen.listed[0].get(n) == name for n in seen.gaps.get(0, ())), WAIT,  # noqa: B023
                    f"{name}: a gap in variant 0 while its writer is mid-way")
                async with http.get(url) as r:
                    held = len(await r.read())
                    assert r.status == 404, f"the bucket holds {held} of {len(ts)} bytes mid-way"
                writer.finish()
                await until(lambda: bucket_has(http, url, ts),  # noqa: B023
                            f"{name}, finished late, in the bucket whole", WAIT, every=0.05)
            names.append(feed.slot())
            await seen.listed_everywhere(names[-1], timeout=WAIT)
            whole = [(seen.segment_url(v, n), feed.folder(v) / n) for v in feed.variants for n in names
                     if not any(seen.listed[v].get(m) == n for m in seen.gaps.get(v, ()))]
            assert len(whole) == 2 * len(names) - 2  # all but the two gaps
            await assert_whole(http, ledger, whole)
            m = await seen.metrics()
            assert m.get(("hls_broadcaster_segments_late_total", (("variant", "0"),))) == 2
            lost = {k: v for k, v in m.items() if k[0] == "hls_broadcaster_segments_lost_total" and v}
            assert lost == {}, lost
            assert await service.stop() == 0
        assert service.problems() == [], "\n".join(service.problems())
    finally:
        for w in writers:
            w.close()


async def bucket_has(http: aiohttp.ClientSession, url: str, data: bytes) -> bool:
    async with http.get(url) as r:
        return r.status == 200 and await r.read() == data


def test_the_watcher_tells_each_ts_segments_extinf_but_the_offline_clips(
        tmp_path: Path, ts_bytes: bytes) -> None:
    """The offline clip's #EXTINF is not its length (docs/owncast.md)."""
    files = OwncastFolder(tmp_path, (0,), shortid="a", list_size=10, target=2)
    files.write_master([MasterEntry(800_000)])
    first = files.slot(ts_bytes, duration=1.5)
    files.offline(ts_bytes, tmp_path)
    writes = Writes(tmp_path, kernel=False)
    HlsWatcher(tmp_path, Sink(), Metrics(), kernel=False, writes=writes).scan()
    assert writes._named == {tmp_path / "0" / first: 1.5}
