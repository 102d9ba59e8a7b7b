"""Whole means whole whatever the writer does (tests/support/odd_writers.py). Whether anyone still has the
file open for writing is asked of the kernel (source/leases.py); the events and the file decide only where it
will not answer. In the end the bucket's bytes are compared with the file its writer left (the ledger)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.ledger import Ledger
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.metrics import Metrics
from broadcaster.source import inotify, leases
from broadcaster.source.owncast import SourceVariant
from broadcaster.source.watcher import HlsWatcher
from broadcaster.source.writes import QUIET, UNHEARD_QUIET, Finish, Writes
from tests.support.fakes import Sink
from tests.support.held_back import HeldBack
from tests.support.observe import Observer
from tests.support.odd_writers import OddWriter
from tests.support.owncast_writer import HandFedOwncast, real_ts_segment
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until
from tests.support.whole import assert_whole
from tests.support.world import World
from tests.support.writes_watch import (KERNEL, PATHS, WATCHES, listed_within, still_waiting, unfinished,
                                        watching)

LOOKS = 12  # still_waiting's looks, 0.05 s apart: 0.6 s, over twice watchfiles' quiet (and the short quiets below)
assert LOOKS * 0.05 > 2 * QUIET


# Every odd writer on both watch paths; and, on the kernel's without the lease, the two it judges otherwise.
UNFINISHED = [*(pytest.param(kind, path.values[0], True, id=f"{kind}-{path.id}", marks=path.marks)
                for kind in ("closed_early", "reopened", "renamed", "touched") for path in PATHS),
              *(pytest.param(kind, True, False, id=f"{kind}-no-lease", marks=KERNEL)
                for kind in ("closed_early", "renamed"))]


@pytest.mark.parametrize(("kind", "kernel", "lease"), UNFINISHED)
async def test_a_writer_that_has_not_finished_is_waited_for_whatever_its_events_said(
        tmp_path: Path, ts_bytes: bytes, kind: str, kernel: bool, lease: bool) -> None:
    """closed_early: a close inside a packet; the others on a packet boundary and quiet. Without the kernel's
    answer (`lease` False), a file renamed into place is judged by the file itself (unheard quiet, 60 s)."""
    async with watching(tmp_path, kernel, lease=lease, unheard_quiet=UNHEARD_QUIET if lease else 60) as w:
        path = tmp_path / "0" / "seg.ts"
        writer = OddWriter(kind, ts_bytes)
        writer.begin(path)
        try:
            wait = asyncio.ensure_future(w.finished(path, 30))
            await until(lambda: w.waiting == 1 or wait.done(), "the upload asked")
            if kind == "touched":
                writer.touch()
                if kernel:
                    await until(lambda: w._writing.get(path) is False, "touch's close was read")
            await still_waiting(wait, LOOKS)
            writer.finish()
            assert await wait is Finish.WAITED
        finally:
            writer.close()


@pytest.mark.parametrize("kernel", PATHS)
async def test_a_whole_segment_truncated_by_name_to_its_own_length_is_finished_not_unfinished(
        tmp_path: Path, ts_bytes: bytes, kernel: bool) -> None:
    """truncate(2) by name writes with no open, so no close follows: nobody holds it open: finished."""
    async with watching(tmp_path, kernel) as w:
        path = tmp_path / "0" / "seg.ts"
        OddWriter("truncated", ts_bytes).begin(path)
        if kernel:
            await until(lambda: w._writing.get(path) is True, "the truncation was read (written, never closed)")
        assert await w.finished(path, 3) in (Finish.READY, Finish.WAITED)


@pytest.mark.parametrize("kernel", PATHS)
async def test_a_segment_truncated_by_name_inside_a_packet_is_given_up_never_finished(
        tmp_path: Path, ts_bytes: bytes, kernel: bool) -> None:
    """Cut inside a packet, nobody will finish it: waited for until the limit, then lost."""
    async with watching(tmp_path, kernel) as w:
        path = tmp_path / "0" / "seg.ts"
        path.write_bytes(ts_bytes)
        os.truncate(path, len(ts_bytes) - 100)
        assert await w.finished(path, 0.5) is Finish.UNFINISHED


@KERNEL
async def test_after_a_restart_a_file_still_open_on_a_packet_boundary_is_never_finished_however_quiet(
        tmp_path: Path, ts_bytes: bytes) -> None:
    """The watch begins while the file is open (a restart mid-segment); the file alone looks whole, quiet."""
    (tmp_path / "0").mkdir()
    with HeldBack(ts_bytes, 188 * 4) as held:
        held.begin(tmp_path / "0" / "seg.ts")
        async with watching(tmp_path, True, unheard_quiet=0.2) as w:
            wait = asyncio.ensure_future(w.finished(tmp_path / "0" / "seg.ts", 30))
            await still_waiting(wait, LOOKS)
            held.release()
            assert await wait is Finish.WAITED


def _flood(folder: Path, events: int) -> None:
    """More than `events` inotify events, two files in turn (the kernel merges only identical neighbours)."""
    fds = [os.open(folder / f"flood-{i}.ts", os.O_WRONLY | os.O_CREAT, 0o644) for i in (0, 1)]
    try:
        for i in range(events + 100):
            os.write(fds[i % 2], b"\x47")
    finally:
        for fd in fds:
            os.close(fd)


@KERNEL
async def test_a_real_queue_overflow_is_logged_counted_and_an_open_file_is_never_taken_for_finished(
        tmp_path: Path, ts_bytes: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """The kernel's IN_Q_OVERFLOW: what was heard before it is forgotten."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many files to make to fill it")
    caplog.set_level(logging.WARNING, logger="broadcaster.source.watcher")
    (tmp_path / "0").mkdir()
    metrics = Metrics()
    w = Writes(tmp_path, kernel=True, unheard_quiet=0.2)
    watcher = HlsWatcher(tmp_path, Sink(), metrics, kernel=True, writes=w)
    await watcher.start()
    path = tmp_path / "0" / "seg.ts"
    held = HeldBack(ts_bytes, 188 * 4)
    try:
        await until(lambda: w._exact, "the kernel watch began")
        held.begin(path)
        await until(lambda: w._writing.get(path) is True, "the write was heard")
        _flood(tmp_path / "0", limit)  # the loop is blocked meanwhile: nothing is read
        sample = metrics.registry.get_sample_value
        await until(lambda: sample("hls_broadcaster_inotify_overflows_total") == 1, "the overflow read and counted")
        assert path not in w._writing  # what was heard before it is forgotten
        said = [r.getMessage() for r in caplog.records if "overflowed" in r.getMessage()]
        assert len(said) == 1 and str(tmp_path) in said[0] and "max_queued_events" in said[0], said
        wait = asyncio.ensure_future(w.finished(path, 30))
        await still_waiting(wait, LOOKS)
        held.release()
        assert await wait is Finish.WAITED
    finally:
        held.close()
        await watcher.stop()


def ask(path: Path) -> bool | None:
    """Whether the kernel says a writer has `path` open, asked on a descriptor of our own."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return leases.writers(fd, path)
    finally:
        os.close(fd)


def test_the_lease_tells_a_writer_anywhere_from_readers_and_from_none(tmp_path: Path) -> None:
    """Open for writing in this process or another: True; only readers, or nobody: False."""
    path = tmp_path / "seg.ts"
    path.write_bytes(b"\x47" * 188)
    assert ask(path) is False
    with open(path, "rb"):
        assert ask(path) is False
    with open(path, "ab"):
        assert ask(path) is True
    with subprocess.Popen([sys.executable, "-c", f"f = open({str(path)!r}, 'ab'); print('open', flush=True); "
                           "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as other:
        assert other.stdin is not None and other.stdout is not None
        assert other.stdout.readline() == b"open\n"
        assert ask(path) is True
        other.stdin.close()
        assert other.wait(timeout=30) == 0
    assert ask(path) is False


async def test_a_writer_opening_the_file_while_the_lease_is_held_ends_nothing(tmp_path: Path) -> None:
    """SIGIO, which the kernel sends the lease's holder, ends a process by default."""
    path = tmp_path / "seg.ts"
    path.write_bytes(b"\x47" * 188)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert leases.writers(fd, path) is False  # sets the handler up
        assert signal.getsignal(signal.SIGIO) is leases._on_sigio
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        with subprocess.Popen([sys.executable, "-c", f"open({str(path)!r}, 'ab').close()"]) as writer:
            await until(lambda: fcntl.fcntl(fd, fcntl.F_GETLEASE) == fcntl.F_UNLCK,  # the break begun
                        "the writer opening the file", 30, every=0.01)
            assert writer.poll() is None  # its open waits for the lease
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
            assert writer.wait(timeout=30) == 0
    finally:
        os.close(fd)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv, to give a file away and drop CAP_LEASE")
def test_where_the_kernel_will_not_answer_it_says_why_once_and_the_answer_is_none(tmp_path: Path) -> None:
    """Not the file's owner and no CAP_LEASE: None, and one WARNING naming the file and the way out."""
    path = tmp_path / "seg.ts"
    path.write_bytes(b"\x47" * 188)
    os.chown(path, 65534, 65534)  # another user's file
    code = ("import logging, os, sys; from pathlib import Path; from broadcaster.source import leases; "
            "logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format='%(message)s'); "
            f"p = Path({str(path)!r}); fd = os.open(p, os.O_RDONLY); "
            "print(leases.writers(fd, p), leases.writers(fd, p))")
    run = subprocess.run(["setpriv", "--bounding-set=-lease", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[-1] == "None None", run.stdout
    warned = [line for line in lines if "cannot ask the kernel" in line]
    assert len(warned) == 1 and str(path) in warned[0] and "CAP_LEASE" in warned[0], run.stdout


def test_asked_from_a_thread_it_cannot_set_the_signal_up_and_says_none(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "_sigio_ready", False)
    monkeypatch.setattr(signal, "getsignal", lambda _s: signal.SIG_DFL)  # as in a process that never asked
    path = tmp_path / "seg.ts"
    path.write_bytes(b"\x47" * 188)
    got: list[bool | None] = []
    thread = threading.Thread(target=lambda: got.append(ask(path)))
    thread.start()
    thread.join()
    assert got == [None]


async def test_a_file_touched_after_its_upload_is_listed_as_uploaded(tmp_path: Path) -> None:
    """Touched (its stamp moved, not its bytes) while its slot waits for variant 1: listed from one upload."""
    world = World(tmp_path, writes=Writes(tmp_path, kernel=False, quiet=0.0))
    world.pub.on_master([SourceVariant(0, 800_000), SourceVariant(1, 300_000)])
    world.owncast_lists(0, "stream-a-0.ts")
    world.owncast_lists(1, "stream-a-0.ts")
    await world.settle()
    world.store.hold("live/1/stream-a-1.ts")
    world.owncast_lists(0, "stream-a-1.ts")
    world.owncast_lists(1, "stream-a-1.ts")
    await until(lambda: "live/0/stream-a-1.ts" in world.store.keys(), "variant 0's copy uploaded")
    path = tmp_path / "0" / "stream-a-1.ts"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    world.store.release("live/1/stream-a-1.ts")
    await world.settle()
    world.owncast_lists(0, "stream-a-2.ts")
    world.owncast_lists(1, "stream-a-2.ts")
    await world.settle()
    assert world.uris(0) == world.uris(1) == ["stream-a-0.ts", "stream-a-1.ts", "stream-a-2.ts"]
    put = [p.body for p in world.store.puts if p.key == "live/0/stream-a-1.ts"]
    assert put == [path.read_bytes()]
    assert "#EXT-X-GAP" not in world.text(0) + world.text(1)
    await world.pub.close()


WAITED = 20.0  # seconds the service may take to start waiting on a file (a loaded machine)
HOLD = 1.0  # seconds a `touch`ed file is held after it, the service free to take it meanwhile


@pytest.mark.integration
@pytest.mark.parametrize("watch", WATCHES)
async def test_the_service_lists_each_odd_writers_segment_whole_or_not_at_all(
        tmp_path: Path, seaweed: SeaweedS3, watch: str) -> None:
    """One slot per odd writer, named while its writer has not finished it."""
    ledger = Ledger()
    ts = real_ts_segment(tmp_path)
    feed = HandFedOwncast(tmp_path / "hls", ts, variants=(0,), ledger=ledger)
    first = feed.slot()
    env = service_env(feed.root, seaweed, tmp_path / "state", HLS_WATCH=watch, WINDOW_SECONDS="30",
                      DELETE_OLD_SEGMENTS="false")
    async with ServiceProcess(env, tmp_path) as service, aiohttp.ClientSession() as http:
        seen = Observer(service.url, http, feed.variants)
        await seen.listed_everywhere(first, timeout=WAITED)
        names = [first]
        listed_unfinished: list[str] = []
        waited = 0.0
        for kind in ("closed_early", "reopened", "renamed", "touched", "truncated"):
            writer = OddWriter(kind, ts, ledger)
            name = feed.slot({0: writer.begin})
            names.append(name)
            try:
                if kind == "truncated":
                    await seen.listed_everywhere(name, timeout=WAITED)
                    continue
                # The service waits on it (counted), or lists it (what this test is against).
                async def counted_or_listed() -> bool:  # awaited at once, in this round
                    if await unfinished(seen) != waited:  # noqa: B023
                        return True
                    await seen.poll()
                    return name in seen.names(0)  # noqa: B023

                await until(counted_or_listed, f"{kind}: the service waiting on {name} or listing it", WAITED,
                            every=0.05)
                waited = await unfinished(seen)
                if kind == "touched":
                    writer.touch()
                if await listed_within(seen, name, HOLD if kind == "touched" else 0.05):
                    listed_unfinished.append(f"{kind}: {name}")
            finally:
                writer.finish()
            await seen.listed_everywhere(name, timeout=WAITED)
        await assert_whole(http, ledger, [(seen.segment_url(0, n), feed.folder(0) / n) for n in names])
        assert listed_unfinished == [], f"listed before their writers finished them: {listed_unfinished}"
        m = await seen.metrics()
        assert not any(k[0] == "hls_broadcaster_segments_lost_total" and v for k, v in m.items()), m
        assert await service.stop() == 0
    assert service.problems() == [], "\n".join(service.problems())
