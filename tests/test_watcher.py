"""HlsWatcher on a real folder with real inotify events, files written in place like Owncast."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import selectors
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from broadcaster.source import inotify
from broadcaster.metrics import Metrics
from broadcaster.source.watcher import HlsWatcher, WatchTiming
from broadcaster.source.owncast import SourcePlaylist, SourceVariant
from tests.support.fakes import Sink
from tests.support.owncast_writer import media, write_in_place as _write_in_place
from tests.support.waiting import until
from tests.support.writes_watch import KERNEL, PATHS

MASTER = '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n0/stream.m3u8\n'
# 16-byte pieces: a reader sees many half-written versions of every playlist.
write_in_place = functools.partial(_write_in_place, piece=16)


# Every event test runs on both paths (PATHS): inotify on the event loop (Linux) and watchfiles (elsewhere).


def rejected(metrics: Metrics, reason: str) -> float | None:
    return metrics.registry.get_sample_value("hls_broadcaster_input_rejected_total", {"reason": reason})


@pytest.fixture(params=PATHS)
async def watched(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Path, Sink, Metrics]]:
    sink, metrics = Sink(), Metrics()
    (tmp_path / "0").mkdir()
    write_in_place(tmp_path / "stream.m3u8", MASTER)  # only the variants it names are read
    # A wipe's variant playlists wait 0.5 s for a new master: the tests that write none get them then.
    watcher = HlsWatcher(tmp_path, sink, metrics, kernel=request.param,
                         timing=WatchTiming(rescan_interval=0.2, new_master_wait=0.5))
    await watcher.start()
    yield tmp_path, sink, metrics
    await watcher.stop()


async def test_segments_are_seen_when_the_playlist_lists_them(watched: tuple[Path, Sink, Metrics]) -> None:
    hls, sink, _ = watched
    write_in_place(hls / "stream.m3u8", MASTER)
    (hls / "0" / "stream-a-0.ts").write_bytes(b"G" * 188)
    write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts"))
    await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts"] and bool(sink.masters))
    assert sink.masters[-1][0].resolution == (640, 360)
    write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts", "stream-a-1.ts"))
    await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts", "stream-a-1.ts"])


async def test_half_written_playlist_is_never_delivered(watched: tuple[Path, Sink, Metrics]) -> None:
    hls, sink, _ = watched
    full = media("stream-a-0.ts", "stream-a-1.ts", ended=True)
    path = hls / "0" / "stream.m3u8"
    write_in_place(path, full, stop_after=len(full) - 5)  # the writer is still busy
    write_in_place(path, full)
    await sink.wait_for(lambda: any(p.ended for _, p in sink.playlists))
    # Every version delivered was complete: nothing ended early, no cut-off names.
    for _, p in sink.playlists:
        assert [s.name for s in p.segments] in (["stream-a-0.ts", "stream-a-1.ts"], ["stream-a-0.ts"])


async def test_new_variant_folder_is_picked_up(watched: tuple[Path, Sink, Metrics]) -> None:
    hls, sink, _ = watched
    (hls / "1").mkdir()
    write_in_place(hls / "1" / "stream.m3u8", media("stream-a-0.ts"))
    # ffmpeg writes the master once every variant has a playlist: the new variant is read then.
    write_in_place(hls / "stream.m3u8", MASTER + "#EXT-X-STREAM-INF:BANDWIDTH=400000\n1/stream.m3u8\n")
    await sink.wait_for(lambda: sink.names(1) == ["stream-a-0.ts"])


async def test_garbage_playlist_is_warned_once_and_stray_files_logged_once(
        watched: tuple[Path, Sink, Metrics], caplog: pytest.LogCaptureFixture) -> None:
    hls, sink, metrics = watched
    caplog.set_level(logging.INFO, logger="broadcaster.source.watcher")
    write_in_place(hls / "0" / "stream.m3u8", "#EXTM3U\nthis is not\x00 a playlist\n#EXTINF:x,\n")
    (hls / "notes.txt").write_text("hello")
    (hls / "notes.txt").write_text("hello again")
    await until(lambda: rejected(metrics, "bad_playlist") and rejected(metrics, "stray_file"),
                "both rejections counted", 5, every=0.02)
    # a few more rescans must not repeat the warnings
    before = len(caplog.records)
    write_in_place(hls / "0" / "stream.m3u8", "#EXTM3U\nthis is not\x00 a playlist\n#EXTINF:x,\n")
    await asyncio.sleep(0)  # let the event be handled, then wait for two quiet rescans below
    await until(lambda: rejected(metrics, "bad_playlist") == 1, "the bad playlist counted once", 5, every=0.02)
    warnings = [r for r in caplog.records if "stream.m3u8" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(hls / "0" / "stream.m3u8") in warnings[0].getMessage()
    strays = [r for r in caplog.records[before:] if "notes.txt" in r.getMessage()]
    assert strays == []
    assert sink.playlists == []


async def test_symlinked_playlist_and_variant_folder_are_not_read(
        watched: tuple[Path, Sink, Metrics], tmp_path_factory: pytest.TempPathFactory) -> None:
    hls, sink, _ = watched
    outside = tmp_path_factory.mktemp("outside")
    (outside / "stream.m3u8").write_text(media("stream-x-0.ts"))
    os.symlink(outside, hls / "7")
    os.symlink(outside / "stream.m3u8", hls / "0" / "stream.m3u8")
    write_in_place(hls / "stream.m3u8", MASTER)
    await sink.wait_for(lambda: bool(sink.masters))
    assert sink.playlists == []


async def test_folder_deleted_and_recreated_keeps_being_watched(watched: tuple[Path, Sink, Metrics]) -> None:
    hls, sink, _ = watched
    write_in_place(hls / "0" / "stream.m3u8", media("stream-a-0.ts"))
    await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts"])
    shutil.rmtree(hls)  # what Owncast does at every transcoder start
    hls.mkdir()
    (hls / "0").mkdir()
    write_in_place(hls / "0" / "stream.m3u8", media("stream-b-0.ts"))
    await sink.wait_for(lambda: sink.names(0) == ["stream-b-0.ts"])
    # and events (not only rescans) work on the new folder
    for i in range(1, 4):
        write_in_place(hls / "0" / "stream.m3u8", media(*[f"stream-b-{j}.ts" for j in range(i + 1)]))
        await sink.wait_for(lambda i=i: len(sink.names(0)) == i + 1)  # type: ignore[misc]


class OrderedSink(Sink):
    """Also remembers the order of every call: ("master", n variants) or (variant, first name)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[object, object]] = []

    def on_master(self, variants: list[SourceVariant]) -> None:
        self.calls.append(("master", len(variants)))
        super().on_master(variants)

    def on_variant_playlist(self, index: int, playlist: SourcePlaylist) -> None:
        self.calls.append((index, playlist.segments[0].name if playlist.segments else None))
        super().on_variant_playlist(index, playlist)


@pytest.mark.parametrize("kernel", PATHS)
async def test_after_a_wipe_variant_playlists_wait_for_the_new_master_naming_a_new_variant(
        tmp_path: Path, kernel: bool) -> None:
    """ffmpeg writes the master last: a new variant is listed from its first segment."""
    sink, metrics = OrderedSink(), Metrics()
    (tmp_path / "0").mkdir()
    write_in_place(tmp_path / "stream.m3u8", MASTER)
    write_in_place(tmp_path / "0" / "stream.m3u8", media("stream-a-0.ts"))
    watcher = HlsWatcher(tmp_path, sink, metrics, kernel=kernel,
                         timing=WatchTiming(rescan_interval=0.2, new_master_wait=60))
    await watcher.start()
    try:
        await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts"])
        shutil.rmtree(tmp_path)  # the new stream: Owncast wipes the folder
        tmp_path.mkdir()
        for v in (0, 1):
            (tmp_path / str(v)).mkdir()
        write_in_place(tmp_path / "0" / "stream.m3u8", media("stream-b-0.ts"))
        write_in_place(tmp_path / "1" / "stream.m3u8", media("stream-b-0.ts"))
        scans = watcher.scans
        await until(lambda: watcher.scans >= scans + 3, "three rescans, each reading the playlists (held)")
        assert (0, "stream-b-0.ts") not in sink.calls, sink.calls
        write_in_place(tmp_path / "stream.m3u8", MASTER + MASTER.splitlines()[1] + "\n1/stream.m3u8\n")
        await sink.wait_for(lambda: sink.names(1) == ["stream-b-0.ts"] and sink.names(0)[-1:] == ["stream-b-0.ts"])
        new = sink.calls[sink.calls.index(("master", 2)):]
        assert new[1:] == [(0, "stream-b-0.ts"), (1, "stream-b-0.ts")], sink.calls
    finally:
        await watcher.stop()


def test_a_quiet_rescan_that_lands_mid_rewrite_is_not_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A quiet rescan may read a playlist half-written: broken means broken at two rescans in a row."""
    sink, metrics = Sink(), Metrics()
    (tmp_path / "0").mkdir()
    write_in_place(tmp_path / "stream.m3u8", MASTER)
    playlist = tmp_path / "0" / "stream.m3u8"
    watcher = HlsWatcher(tmp_path, sink, metrics)
    caplog.set_level(logging.DEBUG, logger="broadcaster.source.watcher")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    full = media("a.ts", "b.ts")
    write_in_place(playlist, full, stop_after=len(full) - 6)  # the rescan lands mid-rewrite
    watcher.scan()
    assert warnings() == [] and sink.playlists == []
    write_in_place(playlist, full)  # the rewrite completes
    watcher.scan()
    assert warnings() == [] and sink.names(0) == ["a.ts", "b.ts"]
    assert rejected(metrics, "bad_playlist") is None

    # Owncast died mid-write: the same broken file at two quiet rescans is warned about, once.
    write_in_place(playlist, media("a.ts", "b.ts", "c.ts"), stop_after=len(full) + 5)
    watcher.scan()
    assert warnings() == []
    watcher.scan()
    watcher.scan()
    assert len(warnings()) == 1 and "incomplete playlist" in warnings()[0] and str(playlist) in warnings()[0]
    assert rejected(metrics, "bad_playlist") == 1


def test_a_playlist_rewritten_broken_again_and_again_is_warned_at_the_third_quiet_rescan(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each quiet rescan finds it changed (a broken writer keeps rewriting it), always broken."""
    (tmp_path / "0").mkdir()
    write_in_place(tmp_path / "stream.m3u8", MASTER)
    playlist = tmp_path / "0" / "stream.m3u8"
    watcher = HlsWatcher(tmp_path, Sink(), Metrics())
    caplog.set_level(logging.DEBUG, logger="broadcaster.source.watcher")
    for n in range(1, 4):
        names = [f"s{i}.ts" for i in range(n)]
        text = media(*names)
        write_in_place(playlist, text, stop_after=len(text) - 3)
        watcher.scan()
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warned) == (1 if n == 3 else 0), (n, warned)


class _WaitProbe(selectors.DefaultSelector):
    """The event loop's selector, noting each time the loop would block: for how long it would."""

    def __init__(self) -> None:
        super().__init__()
        self.on_block: Callable[[float | None], None] | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if (timeout is None or timeout > 0) and self.on_block is not None:
            on_block, self.on_block = self.on_block, None
            on_block(timeout)
            timeout = 0  # the loop runs what on_block scheduled
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        return ready


@KERNEL
def test_idle_watcher_waits_on_the_kernel_not_on_a_clock(tmp_path: Path) -> None:
    """No thread; idle, the loop sleeps until the next rescan; a write wakes it (the kernel's event)."""
    probe = _WaitProbe()
    rescan = 3600.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sink, metrics = Sink(), Metrics()
        (tmp_path / "0").mkdir()
        write_in_place(tmp_path / "stream.m3u8", MASTER)
        threads = set(threading.enumerate())
        watcher = HlsWatcher(tmp_path, sink, metrics, timing=WatchTiming(rescan_interval=rescan))
        await watcher.start()
        try:
            await sink.wait_for(lambda: bool(sink.masters))
            blocked: asyncio.Future[float | None] = loop.create_future()
            probe.on_block = blocked.set_result
            timeout = await blocked  # the next time the loop has nothing to do
            # No thread of its own (a thread an earlier test's anyio pool left may end meanwhile: <=).
            assert set(threading.enumerate()) <= threads, set(threading.enumerate()) - threads
            assert timeout is None or timeout > rescan / 2
            write_in_place(tmp_path / "0" / "stream.m3u8", media("stream-a-0.ts"))
            await sink.wait_for(lambda: sink.names(0) == ["stream-a-0.ts"])
        finally:
            await watcher.stop()

    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(probe)) as runner:
        runner.run(main())


@KERNEL
def test_folder_watch_reports_writes_new_folders_and_its_own_removal(tmp_path: Path) -> None:
    with inotify.FolderWatch(tmp_path) as watch:
        assert watch.read() == []
        (tmp_path / "1").mkdir()
        os.symlink(tmp_path / "1", tmp_path / "7")
        # A new folder is watched once its event is read (what it held before, the watcher reads).
        assert [e.path for e in watch.read() if e.mask & inotify.IN_CREATE] == [tmp_path / "1", tmp_path / "7"]
        (tmp_path / "1" / "stream.m3u8").write_text("x")
        (tmp_path / "stream.m3u8").write_text("x")
        written = [e.path for e in watch.read() if e.mask & inotify.IN_CLOSE_WRITE]
        assert written == [tmp_path / "1" / "stream.m3u8", tmp_path / "stream.m3u8"]
        shutil.rmtree(tmp_path)
        events = watch.read()
        assert any(e.path == tmp_path and e.mask & inotify.IN_DELETE_SELF for e in events)


def test_variant_playlists_without_a_multivariant_playlist_are_said_once_not_silent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Past the grace (or unreadable): /health, one log line, a gauge; a good master ends it."""
    sink, metrics = Sink(), Metrics()
    watcher = HlsWatcher(tmp_path, sink, metrics, timing=WatchTiming(master_grace=0.0))
    caplog.set_level(logging.INFO, logger="broadcaster.source.watcher")

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("hls_broadcaster_master_playlist_missing")

    watcher.scan()
    assert watcher.master_missing() is None  # nothing written: idle, not a problem
    (tmp_path / "0").mkdir()
    write_in_place(tmp_path / "0" / "stream.m3u8", media("stream-a-0.ts"))
    watcher.scan()
    for _ in range(3):
        reason = watcher.master_missing()
        assert reason is not None and "missing" in reason
        assert str(tmp_path / "0" / "stream.m3u8") in reason and str(tmp_path / "stream.m3u8") in reason
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "players cannot start" in warned[0], warned
    assert gauge() == 1 and sink.playlists == []

    write_in_place(tmp_path / "stream.m3u8", "#EXTM3U\nnot a playlist\n")
    for _ in range(3):  # quiet rescans: broken for good
        watcher.scan()
    reason = watcher.master_missing()
    assert reason is not None and "unreadable" in reason, reason

    write_in_place(tmp_path / "stream.m3u8", MASTER)
    watcher.scan()
    assert watcher.master_missing() is None and gauge() == 0
    assert sink.names(0) == ["stream-a-0.ts"]  # the variant that came first is read at once
    assert any("read: serving the stream" in r.getMessage() for r in caplog.records)


def test_a_folder_wiped_before_its_master_came_is_idle_again(tmp_path: Path) -> None:
    watcher = HlsWatcher(tmp_path, Sink(), Metrics(), timing=WatchTiming(master_grace=0.0))
    (tmp_path / "0").mkdir()
    write_in_place(tmp_path / "0" / "stream.m3u8", media("stream-a-0.ts"))
    watcher.scan()
    assert watcher.master_missing() is not None
    shutil.rmtree(tmp_path / "0")  # Owncast gave up and wiped its folder
    watcher.scan()
    assert watcher.master_missing() is None
