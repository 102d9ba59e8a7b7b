"""Only whole segments reach the bucket: one named while still written is waited for, one that changes
during its upload is uploaded again. The writer holds its last bytes back (tests/support/held_back.py), so
ffmpeg's race happens every time, on both watch paths; the bucket's bytes are compared with the file."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
import pytest_asyncio

from broadcaster.demo.ledger import Ledger
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist import hls
from broadcaster import files
from broadcaster.source import inotify, writes
from broadcaster.source.writes import Finish, Writes
from tests.support.held_back import HeldBack
from tests.support.observe import Observer
from tests.support.owncast_writer import HandFedOwncast, real_ts_segment
from tests.support.service_process import ServiceProcess, moto_env, service_env
from tests.support.whole import assert_whole
from tests.support.waiting import until
from tests.support.world import World
from tests.support.writes_watch import (KERNEL, PATHS, WATCHES, listed_within, still_waiting, unfinished,
                                        watching)

CUT = 1000  # bytes held back: not a whole number of TS packets, as a cut in a body almost never is


@pytest_asyncio.fixture(params=PATHS)
async def watched(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Writes, Path]]:
    """Writes fed by a running HlsWatcher (inotify or watchfiles) on tmp_path, and its variant folder."""
    async with watching(tmp_path, request.param) as w:
        yield w, tmp_path / "0"


async def test_a_segment_still_being_written_is_waited_for_until_owncast_finishes_it(
        watched: tuple[Writes, Path], ts_bytes: bytes) -> None:
    w, folder = watched
    with HeldBack(ts_bytes, CUT) as held:
        held.begin(folder / "stream-a-0.ts")
        told: list[str] = []
        wait = asyncio.ensure_future(w.finished(folder / "stream-a-0.ts", 30, lambda: told.append("writing")))
        await until(lambda: told == ["writing"], "the wait saw the file being written")
        assert not wait.done()
        held.release()
        assert await wait is Finish.WAITED
        assert told == ["writing"]  # said once


@KERNEL
@pytest.mark.parametrize("lease", [True, False], ids=["lease", "events"])
async def test_the_kernel_tells_a_cut_on_a_packet_boundary_which_the_file_alone_cannot(
        tmp_path: Path, ts_bytes: bytes, lease: bool) -> None:
    """The lease refused while the file is open for writing, or else the close event."""
    async with watching(tmp_path, True, quiet=0.05, lease=lease) as w:
        with HeldBack(ts_bytes, 188 * 4) as held:
            held.begin(tmp_path / "0" / "seg.ts")
            wait = asyncio.ensure_future(w.finished(tmp_path / "0" / "seg.ts", 30))
            await until(lambda: w.waiting == 1, "the upload waits")
            # Several times the quiet period: a judgement by the file alone would have taken it by now.
            await still_waiting(wait, 5)
            held.release()
            assert await wait is Finish.WAITED


@KERNEL
async def test_a_file_closed_before_it_is_asked_for_costs_no_wait_and_one_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One look (open, fstat, the lease): a close heard is not enough by itself."""
    async with watching(tmp_path, True) as w:
        (tmp_path / "0" / "seg.ts").write_bytes(b"\x47" * 188)
        await until(lambda: w._writing.get(tmp_path / "0" / "seg.ts") is False, "the close was read")
        looks: list[object] = []

        def look(*args: Any) -> object:
            looks.append(args)
            return files.look_beneath(*args)

        monkeypatch.setattr(writes, "look_beneath", look)
        ask = w.finished(tmp_path / "0" / "seg.ts", 30)
        with pytest.raises(StopIteration) as done:
            ask.send(None)  # returns on its first step: it never suspends
        assert done.value.value is Finish.READY
        assert len(looks) == 1


async def test_after_lost_events_a_file_is_judged_by_itself_never_taken_for_finished(tmp_path: Path) -> None:
    """Without the lease, the file itself, cut inside a packet, says it is not finished."""
    folder = tmp_path / "0"
    folder.mkdir()
    path = folder / "seg.ts"
    w = Writes(tmp_path, kernel=True, quiet=0.2, unheard_quiet=0.2, lease=False)
    w.exact(True)
    with HeldBack(b"\x47" * 188 * 20, CUT) as held:
        held.begin(path)
        w.note([inotify.Event(path, inotify.IN_CREATE), inotify.Event(path, inotify.IN_MODIFY)])
        wait = asyncio.ensure_future(w.finished(path, 30))
        await until(lambda: w.waiting == 1)
        w.forget_all()  # IN_Q_OVERFLOW: the watcher calls this
        await still_waiting(wait, 8)  # quiet for longer than `quiet`, but cut inside a packet
        held.release()
        assert await wait is Finish.WAITED


@KERNEL
async def test_the_watcher_forgets_what_the_kernel_said_when_its_queue_overflows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file rewritten while events were lost is judged again, not taken on the old close's word."""
    (tmp_path / "0").mkdir()
    path = tmp_path / "0" / "seg.ts"
    path.write_bytes(b"\x47" * 188 * 4)
    overflow = [False]
    read = inotify.FolderWatch.read

    def read_or_overflow(self: inotify.FolderWatch) -> list[inotify.Event]:
        events = read(self)
        if overflow[0] and events:
            overflow[0] = False
            return [inotify.Event(self.root, inotify.IN_Q_OVERFLOW)]  # these events are the ones lost
        return events

    monkeypatch.setattr(inotify.FolderWatch, "read", read_or_overflow)
    # The events alone (no lease), with short quiets.
    async with watching(tmp_path, True, quiet=0.2, unheard_quiet=0.2, lease=False) as w:
        with HeldBack(b"\x47" * 188 * 20, CUT) as held:
            path.write_bytes(b"\x47" * 188 * 4)
            await until(lambda: w._writing.get(path) is False, "the close was heard")
            overflow[0] = True
            held.begin(path)  # rewritten; the kernel loses the events that would tell it
            await until(lambda: not overflow[0], "the overflow was read")
            assert path not in w._writing
            wait = asyncio.ensure_future(w.finished(path, 30))
            await still_waiting(wait, 8)  # longer than `quiet`: cut inside a packet, so still being written
            held.release()
            assert await wait is Finish.WAITED


@KERNEL
async def test_a_file_written_since_before_the_watch_began_waits_longer_than_the_quiet_of_watchfiles(
        tmp_path: Path, ts_bytes: bytes) -> None:
    """A file the kernel never heard of, cut on a packet boundary, must be quiet for UNHEARD_QUIET."""
    (tmp_path / "0").mkdir()
    with HeldBack(ts_bytes, 188 * 4) as held:
        held.begin(tmp_path / "0" / "seg.ts")  # before the watch
        # The unheard period made long: under load the watch began seconds after the file was written.
        # Without the lease (which tells the open file at once), the quiet is what holds it.
        async with watching(tmp_path, True, unheard_quiet=60, lease=False) as w:
            wait = asyncio.ensure_future(w.finished(tmp_path / "0" / "seg.ts", 30))
            await still_waiting(wait, 10)  # twice QUIET, and more: the file alone looked whole throughout
            held.release()
            assert await wait is Finish.WAITED


@pytest.mark.parametrize("before", ["first_watch", "second_watch"])
async def test_before_a_kernel_watch_begins_a_file_unheard_of_still_waits_the_longer_quiet(
        tmp_path: Path, before: str) -> None:
    """Before a kernel watch begins (at start-up, between two watches) the kernel path's quiet applies."""
    (tmp_path / "0").mkdir()
    w = Writes(tmp_path, kernel=True, quiet=0.05, unheard_quiet=60, lease=False)  # the quiet, not the lease
    if before == "second_watch":
        w.exact(True)
        w.exact(False)  # the old folder's watch ended; the new one has not begun
    # A cut on a packet boundary: the file alone looks whole.
    with HeldBack(b"\x47" * 188 * 20, 188 * 4) as held:
        held.begin(tmp_path / "0" / "seg.ts")
        wait = asyncio.ensure_future(w.finished(tmp_path / "0" / "seg.ts", 30))
        await still_waiting(wait, 6)
        held.release()
        w.exact(True)  # the watch, which hears the close
        w.note([inotify.Event(tmp_path / "0" / "seg.ts", inotify.IN_CLOSE_WRITE)])
        assert await wait is Finish.WAITED


async def test_a_writer_that_never_finishes_is_given_up_at_the_limit(tmp_path: Path) -> None:
    folder = tmp_path / "0"
    folder.mkdir()
    w = Writes(tmp_path, kernel=True)
    w.exact(True)
    with HeldBack(b"\x47" * 188 * 20, 188) as held:
        held.begin(folder / "seg.ts")
        w.note([inotify.Event(folder / "seg.ts", inotify.IN_MODIFY)])
        assert await w.finished(folder / "seg.ts", 0.2) is Finish.UNFINISHED


async def test_a_file_never_made_is_missing_after_a_short_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "0").mkdir()
    monkeypatch.setattr(writes, "MISSING_WAIT", 0.1)
    told: list[int] = []
    assert await Writes(tmp_path, kernel=False).finished(tmp_path / "0" / "gone.ts", 30, lambda: told.append(1)) is Finish.MISSING
    assert told == []  # not "being written": never there


async def test_a_file_changed_during_its_upload_is_uploaded_again_before_it_is_listed(tmp_path: Path) -> None:
    world = World(tmp_path, writes=Writes(tmp_path, kernel=False, quiet=0.0), segment_hashes=True)
    world.owncast_lists(0, "stream-a-0.ts")
    await world.settle()
    key = "live/0/stream-a-1.ts"
    world.store.hold(key)
    world.owncast_lists(0, "stream-a-1.ts")  # 376 bytes of 0x47
    await until(lambda: key in world.store.attempts, "the first upload is under way")
    final = b"\x47" * 188 * 5
    (tmp_path / "0" / "stream-a-1.ts").write_bytes(final)  # Owncast rewrote it meanwhile
    assert [n for _v, _s, n in world.listed] == ["stream-a-0.ts"]
    world.store.release(key)
    await world.settle()
    bodies = [p.body for p in world.store.puts if p.key == key]
    assert bodies == [b"\x47" * 376, final]
    assert [n for _v, _s, n in world.listed] == ["stream-a-0.ts", "stream-a-1.ts"]
    assert hls.segment_hash_line(hashlib.sha256(final).digest()) in world.text()  # what peers are checked against
    assert world.metrics.segment_reuploads.labels(variant="0")._value.get() == 1
    await world.pub.close()


async def test_a_segment_never_finished_is_lost_with_its_gap_marked_never_uploaded_half(tmp_path: Path) -> None:
    w = Writes(tmp_path, kernel=False, quiet=0.0, unheard_quiet=0.0)  # the files World writes whole are finished at once
    w.exact(True)
    world = World(tmp_path, writes=w, unfinished_limit=0.2)
    world.owncast_lists(0, "stream-a-0.ts")
    await world.settle()
    with HeldBack(b"\x47" * 188 * 20, CUT) as held:
        (tmp_path / "0").mkdir(exist_ok=True)
        held.begin(tmp_path / "0" / "stream-a-1.ts")
        w.note([inotify.Event(tmp_path / "0" / "stream-a-1.ts", inotify.IN_MODIFY)])
        world.owncast_lists(0, "stream-a-1.ts", write=False)
        world.owncast_lists(0, "stream-a-2.ts")
        w.note([inotify.Event(tmp_path / "0" / "stream-a-2.ts", inotify.IN_CLOSE_WRITE)])
        await world.settle()
    assert "live/0/stream-a-1.ts" not in world.store.keys()
    assert [n for _v, _s, n in world.listed] == ["stream-a-0.ts", "stream-a-2.ts"]
    assert "#EXT-X-DISCONTINUITY\n" in world.text().split("stream-a-0.ts")[1]
    assert world.metrics.segments_lost.labels(variant="0", reason="unfinished")._value.get() == 1
    await world.pub.close()


@pytest.mark.integration
@pytest.mark.parametrize("watch", WATCHES)
async def test_the_service_lists_a_held_segment_only_once_it_is_whole_and_says_so_once_per_stream(
        tmp_path: Path, moto_url: str, ts_bytes: bytes, watch: str) -> None:
    feed = HandFedOwncast(tmp_path / "hls", ts_bytes, variants=(0,))
    env = moto_env(moto_url, tmp_path, HLS_WATCH=watch, WINDOW_SECONDS="6", R2_KEY_PREFIX=f"held-{watch}",
                   DELETE_OLD_SEGMENTS="false")
    async with ServiceProcess(env, tmp_path / "run") as service, aiohttp.ClientSession() as http:
        seen = Observer(service.url, http, (0,))
        first = feed.slot()
        await seen.listed_everywhere(first, timeout=20)
        finals: dict[str, bytes] = {}
        for round_ in (1, 2):  # the second of the stream is counted, not said again
            with HeldBack(ts_bytes[: len(ts_bytes) - 188 * round_], CUT) as held:
                name = feed.slot({0: held.begin})
                async def counted() -> bool:
                    return await unfinished(seen) == round_  # noqa: B023 (awaited at once, in this round)

                await until(counted, "the service seeing the segment being written", 20, every=0.05)
                assert await unfinished(seen) == round_, "the service never saw the segment being written"
                await seen.poll()
                assert name not in seen.names(0)  # listed only once whole
                held.release()
            await seen.listed_everywhere(name, timeout=20)
            finals[name] = held.data
        s3 = boto3.client("s3", endpoint_url=moto_url, aws_access_key_id="lockkey-0a9",
                          aws_secret_access_key="locksecret-0a9", region_name="us-east-1")
        for name, data in finals.items():
            body = s3.get_object(Bucket="locktest", Key=f"held-{watch}/0/{name}")["Body"].read()
            assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest(), (name, len(body), len(data))
        said = [line for line in service.lines if "while still writing it" in line]
        assert len(said) == 1, said
        m = await seen.metrics()
        assert m.get(("hls_broadcaster_segment_reuploads_total", (("variant", "0"),)), 0) == 0
        assert not any(k[0] == "hls_broadcaster_segments_lost_total" and v for k, v in m.items()), m
        assert service.problems() == []
    assert os.path.exists(feed.folder(0) / first)


HOLD = 1.0  # seconds a tail is held at most once its playlist names it (Owncast's own: ~10 ms)
LATE = 3  # slots whose tails are held


@pytest.mark.integration
async def test_a_segment_named_before_its_last_bytes_are_written_is_listed_whole(
        tmp_path: Path, seaweed: SeaweedS3) -> None:
    ledger = Ledger()
    feed = HandFedOwncast(tmp_path / "hls", real_ts_segment(tmp_path), ledger=ledger)
    first = [feed.slot(), feed.slot()]
    env = service_env(feed.root, seaweed, tmp_path / "state", WINDOW_SECONDS="10")
    listed_while_held: list[str] = []
    async with ServiceProcess(env, tmp_path) as service, aiohttp.ClientSession() as http:
        seen = Observer(service.url, http, feed.variants)
        await seen.listed_everywhere(*first)
        late: list[str] = []
        for _ in range(LATE):
            slot = feed.late_slot()  # all but its last fifth on disk, the file open; then the playlists
            try:
                if await listed_within(seen, slot.name, HOLD):
                    listed_while_held.append(slot.name)
            finally:
                slot.finish()
            late.append(slot.name)
        last = feed.slot()  # and a whole one after them
        await seen.listed_everywhere(*late, last, timeout=20)
        names = [*first, *late, last]
        await assert_whole(http, ledger, [(seen.segment_url(v, n), feed.folder(v) / n)
                                          for v in feed.variants for n in names])
        assert listed_while_held == [], f"listed while Owncast was still writing them: {listed_while_held}"
        assert await service.stop() == 0
    assert service.problems() == [], "\n".join(service.problems())
