"""The writers' ledger (what each writer of Owncast's folder finished, recorded at close) and LateTails
(a segment's last bytes held until the playlist naming it is written), through real ffmpeg too."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import LateTails, Ledger, OwncastEmulator, Variant, resolve_settings
from broadcaster.demo.ledger import Finished
from broadcaster.demo.owncast_files import (
    OpenInPlace, OwncastFolder, copy_in_place, move_into_place, write_in_place,
)
from broadcaster.demo.receiver import PutReceiver
from tests.support.owncast_writer import HandFedOwncast
from tests.support.waiting import until
from tests.support.whole import finished


def test_each_writer_records_the_file_it_closed_and_a_rewrite_replaces_it(tmp_path: Path) -> None:
    ledger = Ledger()
    path = tmp_path / "stream.m3u8"
    write_in_place(path, "first version\n", ledger=ledger)
    assert ledger.get(path) == Finished.of(b"first version\n")
    write_in_place(path, b"second\n", piece=2, ledger=ledger)
    assert ledger.get(path) == Finished(hashlib.sha256(b"second\n").hexdigest(), 7) and len(ledger) == 1
    write_in_place(path, b"0123456789", stop_after=6, ledger=ledger)  # the writer is still busy
    assert ledger.get(path) == Finished.of(b"second\n")  # not finished: not recorded
    (tmp_path / "tmp").mkdir()
    move_into_place("moved\n", path, tmp_path / "tmp", ledger)
    assert ledger.get(path) == Finished.of(b"moved\n") == Finished.of(path.read_bytes())
    assert ledger.get(tmp_path / "never.ts") is None


def test_a_file_still_open_is_recorded_only_once_finished(tmp_path: Path) -> None:
    ledger = Ledger()
    held = OpenInPlace(tmp_path / "a.ts", b"x" * 1000, 800, ledger)
    assert (tmp_path / "a.ts").read_bytes() == b"x" * 800 and ledger.get(held.path) is None
    held.finish()
    held.finish()  # idempotent
    assert held.finished and (tmp_path / "a.ts").stat().st_size == 1000
    assert ledger.mismatch(held.path, b"x" * 1000) is None
    assert ledger.mismatch(held.path, b"x" * 800) == (
        f"800 bytes (sha256 {hashlib.sha256(b'x' * 800).hexdigest()[:12]}), but the writer of a.ts finished "
        f"1,000 bytes (sha256 {hashlib.sha256(b'x' * 1000).hexdigest()[:12]})")
    assert "never finished" in str(ledger.mismatch(tmp_path / "b.ts", b""))


def test_the_ledger_is_bounded_and_forgets_the_oldest(tmp_path: Path) -> None:
    ledger = Ledger(limit=3)
    for n in range(5):
        write_in_place(tmp_path / f"{n}.ts", b"%d" % n, ledger=ledger)
    write_in_place(tmp_path / "2.ts", b"again", ledger=ledger)  # a rewrite is the newest entry
    write_in_place(tmp_path / "5.ts", b"5", ledger=ledger)
    assert len(ledger) == 3
    kept = [ledger.get(tmp_path / f"{n}.ts") is not None for n in range(6)]
    assert kept == [False, False, True, False, True, True]
    with pytest.raises(ValueError):
        Ledger(limit=0)


def test_the_hand_fed_folder_records_what_it_writes_and_a_late_slot_once_finished(tmp_path: Path) -> None:
    ledger = Ledger()
    files = OwncastFolder(tmp_path / "hls", (0, 1), shortid="x", ledger=ledger)
    name = files.slot({0: b"zero", 1: b"one"})
    assert ledger.get(files.folder(1) / name) == Finished.of(b"one")
    assert ledger.get(files.playlist(0)) == Finished.of(files.playlist(0).read_bytes())
    feed = HandFedOwncast(tmp_path / "fed", b"\x47" * 1880, ledger=ledger)
    assert ledger.get(feed.root / "stream.m3u8") is not None
    late = feed.late_slot()
    for v in feed.variants:  # listed while its writer still holds its last fifth
        assert late.name in feed.playlist(v).read_text()
        assert (feed.folder(v) / late.name).stat().st_size == 1880 - 376
        assert ledger.get(feed.folder(v) / late.name) is None
    late.finish()
    assert all(ledger.mismatch(feed.folder(v) / late.name, b"\x47" * 1880) is None for v in feed.variants)


# -- the PUT receiver ------------------------------------------------------------------------------------


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[PutReceiver]:
    (tmp_path / "hls" / "0").mkdir(parents=True)
    got = PutReceiver(tmp_path / "hls", ledger=Ledger(), late_tails=LateTails(linger=0.2, longest=1.0))
    await got.start()
    yield got
    await got.close()


async def test_copy_in_place_records_the_body_as_closed(tmp_path: Path) -> None:
    async def body() -> AsyncIterator[bytes]:
        for piece in (b"ab", b"cd", b"e"):
            yield piece

    ledger = Ledger()
    for delay in (0.0, 0.001):
        assert await copy_in_place(tmp_path / f"{delay}.ts", body(), delay=delay, ledger=ledger) == 5
        assert ledger.get(tmp_path / f"{delay}.ts") == Finished.of(b"abcde")


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def put(http: aiohttp.ClientSession, url: str, body: bytes) -> int:
    async with http.put(url, data=body) as r:
        return r.status


async def test_the_receiver_writes_a_segments_tail_after_the_playlist_naming_it(
        receiver: PutReceiver) -> None:
    base = f"http://127.0.0.1:{receiver.port}/0"
    segment, body = receiver.hls_dir / "0" / "stream-x-1.ts", os.urandom(100_000)
    tails, ledger = receiver.late_tails, receiver.ledger
    assert tails is not None and ledger is not None
    async with aiohttp.ClientSession() as http:
        sent = asyncio.create_task(put(http, f"{base}/stream-x-1.ts", body))  # ffmpeg does not wait for it
        await until(lambda: size(segment) == 80_000, "all but its last fifth on disk")
        assert ledger.get(segment) is None and not sent.done()
        assert await put(http, f"{base}/stream.m3u8", b"#EXTM3U\n#EXTINF:1.0,\nstream-x-1.ts\n") == 200
        assert segment.stat().st_size == 80_000  # the playlist names it; its tail is still to come
        assert ledger.get(receiver.hls_dir / "0" / "stream.m3u8") is not None
        assert await sent == 200
        assert segment.read_bytes() == body and ledger.mismatch(segment, body) is None
        assert (tails.held, tails.timed_out) == (1, 0)

        # Named by no playlist: written all the same after `longest`.
        assert await put(http, f"{base}/stream-x-2.ts", body) == 200
        assert (tails.held, tails.timed_out) == (2, 1)
        assert ledger.mismatch(receiver.hls_dir / "0" / "stream-x-2.ts", body) is None

        # A playlist that came before the segment's body was read lets it go after `linger` alone.
        assert await put(http, f"{base}/stream.m3u8", b"#EXTM3U\n#EXTINF:1.0,\nstream-x-3.ts\n") == 200
        assert await put(http, f"{base}/stream-x-3.ts", body) == 200
        assert (tails.held, tails.timed_out) == (3, 1)

        # Closing finishes what is held at once.
        sent = asyncio.create_task(put(http, f"{base}/stream-x-4.ts", body))
        await until(lambda: size(receiver.hls_dir / "0" / "stream-x-4.ts") > 0, "a body held")
        await receiver.close()
        assert ledger.mismatch(receiver.hls_dir / "0" / "stream-x-4.ts", body) is None
        with contextlib.suppress(aiohttp.ClientError):
            await sent  # answered or not as the server went: its file is finished either way


def test_late_tails_refuses_nonsense() -> None:
    for bad in (dict(share=0.0), dict(share=1.0), dict(linger=-1.0), dict(longest=0.0)):
        with pytest.raises(ValueError, match="LateTails"):
            LateTails(**bad)


@pytest.mark.integration
async def test_through_ffmpeg_every_segment_is_named_while_cut_then_finished_whole(tmp_path: Path) -> None:
    tails = LateTails(linger=2.0, longest=5.0)
    copied = Variant(320, 180, 600, passthrough=True, audio_passthrough=True)
    stream = resolve_settings(variants=[copied, Variant(128, 72, 100)], latency_level=0, source_keyframes=[1.0])
    owncast = OwncastEmulator(tmp_path / "hls", stream, ledger=Ledger())
    owncast.late_tails = tails
    async with owncast:
        ledger = owncast.ledger
        assert ledger is not None
        at_first_sight: dict[Path, int] = {}

        def three_each() -> bool:
            """Each segment newly listed is not finished yet (LateTails holds its last bytes)."""
            for v in (0, 1):
                for name in owncast.listed_segments(v):
                    path = owncast.variant_dir(v) / name
                    if path not in at_first_sight:
                        assert ledger.get(path) is None, f"{name} was finished before its playlist named it"
                        at_first_sight[path] = path.stat().st_size if path.exists() else -1
            return min(sum(p.parent.name == str(v) for p in at_first_sight) for v in (0, 1)) >= 3

        await until(three_each, "three segments listed in each variant", 40, every=0.02,
                    detail=lambda: f"too few segments: {at_first_sight}")
        await owncast.stop_stream()
        assert tails.held >= len(at_first_sight) and tails.timed_out == 0
        for path, size in at_first_sight.items():
            final = await finished(ledger, path)  # the last ones may still be held
            assert final is not None and size < final.size, (path.name, size, final)
            assert Finished.of(path.read_bytes()) == final
