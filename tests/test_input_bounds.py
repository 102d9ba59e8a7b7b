"""Input bounded and never fatal: what HlsWatcher reads from HLS_DIR, on real folders with
real inotify events. Faults that need a handle shortage are injected at the one seam (os.open)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from broadcaster.files import Refused, read_beneath
from broadcaster.source import owncast, playlist_reader
from broadcaster.metrics import Metrics
from broadcaster.source.owncast import PlaylistError, parse_media_playlist
from broadcaster.source.watcher import HlsWatcher, WatchTiming
from tests.support.fakes import Sink
from tests.support.owncast_writer import media, write_in_place
from tests.support.waiting import until


def master(*indices: int) -> str:
    return "#EXTM3U\n" + "".join(
        f"#EXT-X-STREAM-INF:BANDWIDTH={800000 - i},RESOLUTION=640x360\n{i}/stream.m3u8\n" for i in indices)


def rejected(metrics: Metrics, reason: str) -> float:
    sample = metrics.registry.get_sample_value("hls_broadcaster_input_rejected_total", {"reason": reason})
    return sample or 0.0


def lines(caplog: pytest.LogCaptureFixture, *needles: str, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= level and all(n in r.getMessage() for n in needles)]


@pytest.fixture
def hls(tmp_path: Path) -> Path:
    root = tmp_path / "hls"
    (root / "0").mkdir(parents=True)
    write_in_place(root / "stream.m3u8", master(0))
    return root


@pytest.fixture
def held_fifo() -> Iterator[Callable[[Path], None]]:
    """mkfifo with a writer held open on it (a reader then finds no data and no end)."""
    fds: list[int] = []

    def make(path: Path) -> None:
        os.mkfifo(path)
        fds.append(os.open(path, os.O_RDWR | os.O_NONBLOCK))

    yield make
    for fd in fds:
        os.close(fd)


@asynccontextmanager
async def watching(hls: Path, rescan: float = 0.2) -> AsyncIterator[tuple[HlsWatcher, Sink, Metrics]]:
    """HlsWatcher on `hls` (a quiet rescan every `rescan` s), started, then stopped at the block's end."""
    sink, metrics = Sink(), Metrics()
    w = HlsWatcher(hls, sink, metrics, timing=WatchTiming(rescan_interval=rescan))
    await w.start()
    try:
        yield w, sink, metrics
    finally:
        await w.stop()


# -- a FIFO named stream.m3u8 ---------------------------------------------------------------------------


async def test_a_fifo_playlist_at_start_up_neither_raises_nor_stops_the_watcher(
        hls: Path, held_fifo: Callable[[Path], None], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.source.watcher")
    held_fifo(hls / "0" / "stream.m3u8")
    async with watching(hls) as (_, sink, metrics):  # the scan at start-up reads the FIFO
        await until(lambda: rejected(metrics, "bad_playlist"), "the bad playlist rejected", 5, every=0.02)
        (hls / "0" / "stream.m3u8").unlink()
        write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts"))
        await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts"])
    said = lines(caplog, str(hls / "0" / "stream.m3u8"), "not a regular file", level=logging.WARNING)
    assert len(said) == 1, said


async def test_a_fifo_swapped_in_while_running_does_not_stop_the_watcher(
        hls: Path, held_fifo: Callable[[Path], None]) -> None:
    playlist = hls / "0" / "stream.m3u8"
    async with watching(hls) as (_, sink, metrics):
        write_in_place(playlist, media("stream-a-0.ts"))
        await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts"])
        held_fifo(hls / "0" / "fifo")
        os.replace(hls / "0" / "fifo", playlist)
        await until(lambda: rejected(metrics, "bad_playlist"), "the bad playlist rejected", 5, every=0.02)
        playlist.unlink()
        write_in_place(playlist, media("stream-a-0.ts", "stream-a-1.ts"))
        await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts", "stream-a-1.ts"])


async def test_any_error_in_a_scan_is_logged_once_and_the_watcher_goes_on(
        hls: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.source")
    write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts"))
    broken = [True]
    real = owncast.parse_media_playlist  # what the watcher's reader imported

    def parse(text: str) -> owncast.SourcePlaylist:
        if broken[0]:
            raise RuntimeError("a bug in the parser")
        return real(text)

    monkeypatch.setattr(playlist_reader, "parse_media_playlist", parse)
    async with watching(hls, rescan=0.05) as (w, sink, _):  # starting must not raise
        for _ in range(5):  # several rescans and events hit the same bug: each write, then a rescan
            write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts"))
            scans = w.scans
            await until(lambda: w.scans > scans, "another scan", 5, every=0.01)
        broken[0] = False
        write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts", "stream-a-1.ts"))
        await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts", "stream-a-1.ts"])
    said = lines(caplog, "a bug in the parser")
    assert len(said) == 1, said
    assert "Traceback" not in caplog.text


# -- only the master's variants, entries and bytes capped -----------------------------------------------


async def test_only_the_variants_the_master_names_are_read(
        hls: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.source.watcher")
    async with watching(hls) as (watcher, sink, metrics):
        (hls / "5").mkdir()
        write_in_place(hls / "5" / "stream.m3u8", media("stream-x-0.ts"))
        write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts"))
        await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts"])
        await until(lambda: rejected(metrics, "not_a_variant"), "a playlist that is no variant rejected", 5,
                    every=0.02)
        for i in range(1, 4):  # events and rescans go on; 5 stays out and is not named again
            write_in_place(hls / "5" / "stream.m3u8", media(*[f"stream-x-{j}.ts" for j in range(i + 1)]))
            write_in_place(hls / "0" / "stream.m3u8", media(*[f"stream-a-{j}.ts" for j in range(i + 1)]))
            await sink.wait_for(lambda i=i: len(sink.names(0)) == i + 1)  # type: ignore[misc]
            scans = watcher.scans
            # at least one rescan after this write, so 5 had its chance
            await until(lambda: watcher.scans > scans, "another scan", 5, every=0.02)
        assert [i for i, _ in sink.playlists if i == 5] == []
        assert rejected(metrics, "not_a_variant") == 1
        assert len(lines(caplog, repr(str(hls / "5")))) == 1
        # Once the master names it (Owncast writes the master after the variants' first playlists), it is read
        write_in_place(hls / "stream.m3u8", master(0, 5))
        await sink.wait_for(lambda: len(sink.names(5)) == 4)


def test_a_playlist_lists_at_most_its_newest_entries_numbered_as_owncast_numbers_them() -> None:
    count = owncast.MAX_PLAYLIST_ENTRIES * 4
    text = ("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:1000\n"
            + "".join(f"#EXTINF:1.0,\ns-{i}.ts\n" for i in range(count)))
    assert len(text.encode()) < playlist_reader.MAX_PLAYLIST_BYTES
    p = parse_media_playlist(text)
    assert len(p.segments) == owncast.MAX_PLAYLIST_ENTRIES
    assert p.skipped == count - owncast.MAX_PLAYLIST_ENTRIES
    first = p.segments[0]
    assert first.name == f"s-{count - owncast.MAX_PLAYLIST_ENTRIES}.ts"
    assert p.media_sequence + first.position == 1000 + count - owncast.MAX_PLAYLIST_ENTRIES
    assert p.segments[-1].name == f"s-{count - 1}.ts"


def test_a_playlist_over_the_byte_limit_is_refused(hls: Path) -> None:
    playlist = hls / "0" / "stream.m3u8"
    body = "".join(f"#EXTINF:1.0,\ns-{i}.ts\n" for i in range(playlist_reader.MAX_PLAYLIST_BYTES // 10))
    write_in_place(playlist, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n" + body)
    with pytest.raises(PlaylistError, match="larger than"):
        playlist_reader.read_playlist(hls, ("0", "stream.m3u8"))


# -- a folder that appears while Owncast writes every ~0.2 s --------------------------------------------


async def test_a_variant_folder_that_appears_while_the_others_are_busy_is_noticed(
        hls: Path, tmp_path: Path) -> None:
    """A file renamed into a new folder, or a folder moved in, is noticed while Owncast writes."""
    (hls / "1").mkdir()
    write_in_place(hls / "stream.m3u8", master(0, 1, 2, 3))
    stop = asyncio.Event()

    async def owncast_writes() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            for v in (0, 1):
                write_in_place(hls / str(v) / "stream.m3u8", media(*[f"stream-a-{j}.ts" for j in range(n)]))
            await asyncio.sleep(0.2)

    async with watching(hls, rescan=WatchTiming.rescan_interval) as (_, sink, _):  # the default quiet rescan
        writer = asyncio.create_task(owncast_writes())
        try:
            await sink.wait_for(lambda: len(sink.names(0)) >= 2)
            ready = tmp_path / "ready.m3u8"
            write_in_place(ready, media("stream-b-0.ts"))
            (hls / "2").mkdir()
            os.rename(ready, hls / "2" / "stream.m3u8")
            folder = tmp_path / "3"
            folder.mkdir()
            write_in_place(folder / "stream.m3u8", media("stream-c-0.ts"))
            os.rename(folder, hls / "3")
            await sink.wait_for(
                lambda: sink.names(2) == ["stream-b-0.ts"] and sink.names(3) == ["stream-c-0.ts"], timeout=10)
        finally:
            stop.set()
            await writer


# -- out of file handles: read again later, never given up ----------------------------------------------


async def test_a_playlist_unopenable_for_lack_of_handles_is_read_again(
        hls: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broadcaster.source.watcher")
    async with watching(hls, rescan=30) as (_, sink, metrics):  # no rescan to the rescue
        written = [0]

        def seen() -> bool:
            if sink.names(0):
                return True
            written[0] += 1
            write_in_place(hls / "0" / "stream.m3u8", media(*[f"stream-a-{i}.ts" for i in range(written[0])]))
            return False

        # Until an event was seen: the watch is up (60 s: a net, it takes a moment).
        await until(seen, "the watch up (an event seen)", 60, every=0.05)
        real_open = os.open
        failures = [3]

        def scarce_open(path: str | os.PathLike[str], flags: int, *args: object, **kwargs: object) -> int:
            if str(path).endswith("stream.m3u8") and failures[0]:  # only 0/stream.m3u8 changes here
                failures[0] -= 1
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(path))
            return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", scarce_open)
        try:
            names = [f"stream-a-{i}.ts" for i in range(written[0] + 1)]
            write_in_place(hls / "0" / "stream.m3u8", media(*names))  # one event, then quiet
            await sink.wait_for(lambda: sink.names(0) == names, timeout=10)
        finally:
            monkeypatch.undo()
    assert failures == [0]
    assert rejected(metrics, "bad_playlist") == 0
    assert lines(caplog, "ignoring") == []
    said = lines(caplog, "Too many open files", level=logging.WARNING)
    assert len(said) == 1 and str(hls / "0" / "stream.m3u8") in said[0]


_CHILD = r"""
import asyncio, errno, logging, os, resource, sys
from pathlib import Path
from broadcaster.metrics import Metrics
from broadcaster.bucket.uploader import Backoff, Uploader
from broadcaster.source.watcher import HlsWatcher
from tests.support.fakes import FakeStore, Sink

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
root = Path(sys.argv[1])
held = []

def exhaust():
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as err:
        assert err.errno == errno.EMFILE, err

def release():
    while held:
        os.close(held.pop())

async def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    sink = Sink()
    watcher = HlsWatcher(root, sink, Metrics())
    exhaust()
    watcher.scan()  # the master cannot be opened: read again shortly
    assert sink.playlists == [], sink.playlists
    release()
    await sink.wait_for(lambda: bool(sink.playlists))
    await watcher.stop()

    slept = []
    async def sleep(delay):
        slept.append(delay)
        release()  # handles come back while the upload waits
    store = FakeStore()
    up = Uploader(store, Metrics(), concurrency=1, attempt_timeout=5, backoff=Backoff(sleep=sleep))
    exhaust()
    await up.upload_file(root / "0" / "seg.ts", "k", "0", root=root)
    assert store.keys() == ["k"] and len(slept) == 1, (store.keys(), slept)
    print("ALL GOOD")

asyncio.run(main())
"""


def test_real_handle_exhaustion_is_waited_out_in_a_child_process(hls: Path) -> None:
    """The same with a real RLIMIT_NOFILE, in a child process (the test runner keeps its handles)."""
    write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts"))
    (hls / "0" / "seg.ts").write_bytes(b"\x47" * 188)
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(hls)], env=env, cwd=repo, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "ALL GOOD" in out.stdout, out.stdout + out.stderr
    assert "ignoring" not in out.stdout and "lost" not in out.stdout and "Traceback" not in out.stderr
    assert "Too many open files" in out.stdout


def test_read_beneath_reads_regular_files_only_and_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "hls"
    (root / "0").mkdir(parents=True)
    (tmp_path / "secret.ts").write_bytes(b"secret")
    data = os.urandom(200_000)
    (root / "0" / "seg.ts").write_bytes(data)
    assert read_beneath(root, ("0", "seg.ts"), 200_000) == data
    with pytest.raises(Refused) as err:
        read_beneath(root, ("0", "seg.ts"), 199_999)
    assert err.value.reason == "too_large"
    for parts in (("..", "secret.ts"), ("0", "..", "..", "secret.ts"), ("0/../../secret.ts",), ()):
        with pytest.raises(Refused):
            read_beneath(root, parts, 100)
    os.mkfifo(root / "0" / "fifo")  # no writer: a blocking open would wait for ever
    with pytest.raises(Refused) as err:
        read_beneath(root, ("0", "fifo"), 100)
    assert err.value.reason == "not_a_file"
    (root / "1").symlink_to(root / "0", target_is_directory=True)  # even to a folder inside
    with pytest.raises(Refused) as err:
        read_beneath(root, ("1", "seg.ts"), 200_000)
    assert err.value.reason == "symlink" and err.value.path == root / "1"
