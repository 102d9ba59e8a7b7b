"""Uploader: headers and keys on a real S3 API (moto server), retries and losses at the seam."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.metrics import Metrics
from broadcaster.bucket import lateness
from broadcaster.bucket.store import BucketAccess, S3Store, StoreError
from broadcaster.bucket.uploader import Backoff, SegmentLost, Uploader, read_segment_file
from tests.support.fakes import FakeStore
from tests.support.waiting import until
from tests.support.world import opened_held


@pytest.fixture
async def store(moto_url: str) -> AsyncIterator[S3Store]:
    s = S3Store(BucketAccess(moto_url, "us-east-1", "k", "s", "live"))
    await s.start()
    buckets = await s.client.list_buckets()
    if not any(b["Name"] == "live" for b in buckets["Buckets"]):
        await s.client.create_bucket(Bucket="live")
    yield s
    await s.close()


def segment(tmp_path: Path, name: str = "stream-a-1.ts", size: int = 188 * 10) -> Path:
    path = tmp_path / name
    path.write_bytes(b"\x47" * size)
    return path


async def test_upload_puts_bytes_with_segment_headers(tmp_path: Path, store: S3Store) -> None:
    metrics = Metrics()
    up = Uploader(store, metrics, concurrency=2, attempt_timeout=5)
    path = segment(tmp_path)
    done = await up.upload_file(path, "live/0/stream-a-1.ts", "0", hashed=True)
    assert done.took > 0  # seconds the PutObject took
    head = await store.client.head_object(Bucket="live", Key="live/0/stream-a-1.ts")
    assert head["ContentType"] == "video/mp2t"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    got = await store.client.get_object(Bucket="live", Key="live/0/stream-a-1.ts")
    async with got["Body"] as body:
        stored = await body.read()
    assert stored == path.read_bytes()
    assert done.sha256 == hashlib.sha256(stored).digest()  # of the bytes in the bucket (viewers check peers')
    assert up.uploads_done == 1 and up.storage_ok is True
    assert metrics.registry.get_sample_value("hls_broadcaster_uploaded_bytes_total", {"pathway": "bucket", "variant": "0"}) == 1880


async def test_fmp4_types(tmp_path: Path) -> None:
    fake = FakeStore()
    up = Uploader(fake, Metrics(), concurrency=1, attempt_timeout=1)
    await up.upload_file(segment(tmp_path, "init.mp4"), "k/init.mp4", "0")
    await up.upload_file(segment(tmp_path, "s-1.m4s"), "k/s-1.m4s", "0")
    assert [p.content_type for p in fake.puts] == ["video/mp4", "video/iso.segment"]


async def test_store_reports_unreachable_endpoint() -> None:
    async with S3Store(BucketAccess("http://127.0.0.1:9", "auto", "k", "s", "live"), connect_timeout=1) as s:
        with pytest.raises(StoreError) as err:
            await s.probe()
    assert err.value.setting is None


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_retries_with_capped_exponential_backoff_and_jitter(tmp_path: Path) -> None:
    fake = FakeStore(fail={"k": 6})
    sleeps = Sleeps()
    metrics = Metrics()
    up = Uploader(fake, metrics, concurrency=1, attempt_timeout=1,
                  backoff=Backoff(base=0.25, cap=4, sleep=sleeps, rng=lambda: 0.5))
    await up.upload_file(segment(tmp_path), "k", "0")
    assert sleeps.delays == [0.125, 0.25, 0.5, 1.0, 2.0, 2.0]
    assert up.uploads_failed == 6 and up.uploads_done == 1 and up.storage_ok
    assert metrics.registry.get_sample_value("hls_broadcaster_upload_failures_total", {"pathway": "bucket", "reason": "InternalError"}) == 6


async def test_attempt_timeout_is_a_retryable_failure(tmp_path: Path) -> None:
    path = segment(tmp_path)
    slept: list[float] = []

    async def delete_after_two_attempts(delay: float) -> None:
        slept.append(delay)
        if len(slept) == 2:
            path.unlink()

    up = Uploader(FakeStore(hang=True), Metrics(), concurrency=1, attempt_timeout=0.05,
                  backoff=Backoff(sleep=delete_after_two_attempts))
    with pytest.raises(SegmentLost) as err:
        await up.upload_file(path, "k", "0")
    assert err.value.reason == "deleted"
    assert up.uploads_failed == 2 and up.last_error == "Timeout" and up.storage_ok is False


async def test_deleted_before_upload_is_lost_not_retried(tmp_path: Path) -> None:
    fake = FakeStore()
    up = Uploader(fake, Metrics(), concurrency=1, attempt_timeout=1)
    with pytest.raises(SegmentLost) as err:
        await up.upload_file(tmp_path / "gone.ts", "k", "0")
    assert err.value.reason == "deleted" and fake.attempts == []


@pytest.mark.parametrize("kind", ["symlink", "empty", "too_large", "not_a_file", "bad_type"])
def test_unsafe_files_are_refused(tmp_path: Path, kind: str) -> None:
    outside = tmp_path / "secret.ts"
    outside.write_bytes(b"x" * 100)
    path = tmp_path / "seg.ts"
    if kind == "symlink":
        path.symlink_to(outside)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "too_large":
        path.write_bytes(b"x" * 101)
    elif kind == "not_a_file":
        os.mkfifo(path)
    if kind == "bad_type":
        up = Uploader(FakeStore(), Metrics(), concurrency=1, attempt_timeout=1)
        with pytest.raises(SegmentLost) as err:
            asyncio.run(up.upload_file(tmp_path / "x.exe", "k", "0"))
    else:
        with pytest.raises(SegmentLost) as err:
            read_segment_file(path, max_bytes=100)
    assert err.value.reason == kind


async def test_waiting_retries_go_at_once_when_the_bucket_works_again(tmp_path: Path) -> None:
    fake = FakeStore(down=True)
    slept: list[float] = []

    async def long_sleep(delay: float) -> None:
        slept.append(delay)
        await asyncio.Event().wait()  # a retry timer that would never end by itself

    up = Uploader(fake, Metrics(), concurrency=2, attempt_timeout=1,
                  backoff=Backoff(base=100, sleep=long_sleep))
    task = asyncio.ensure_future(up.upload_file(segment(tmp_path), "k", "0"))
    await until(lambda: slept, "the backoff's sleep begun", 5, every=0.001)
    fake.down = False
    up.record(True)  # e.g. the storage probe or another upload saw the bucket work
    async with asyncio.timeout(5):
        await task
    assert fake.keys() == ["k"]


async def test_a_bucket_outage_is_one_warning_then_one_info_with_per_attempt_lines_at_debug(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "broadcaster.bucket.uploader")
    fake = FakeStore(down=True)
    up = Uploader(fake, Metrics(), concurrency=4, attempt_timeout=1, backoff=Backoff(base=0.001, cap=0.002))
    uploads = [asyncio.ensure_future(up.upload_file(segment(tmp_path, f"stream-a-{n}.ts"), f"k{n}", "0"))
               for n in range(6)]
    await until(lambda: up.uploads_failed >= 60, "60 failed uploads", 10, every=0.001)
    assert up.waiting()[0] == 6
    fake.down = False
    async with asyncio.timeout(10):
        await asyncio.gather(*uploads)
    assert up.waiting() == (0, None)
    records = [r for r in caplog.records if r.name == "broadcaster.bucket.uploader"]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert warnings == ["bucket unreachable (ServiceUnavailable): uploads wait and are retried; a summary "
                        "follows every 30s while it lasts"]
    assert len(infos) == 1 and infos[0].startswith("bucket reachable again after ")
    assert f"; {up.uploads_failed} attempts failed" in infos[0]
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG and "failed (attempt" in r.getMessage()]
    assert len(debug) == up.uploads_failed


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOMEM])
async def test_out_of_handles_or_memory_is_retried_never_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """EMFILE/ENFILE/ENOMEM say nothing about the file: it is read again after a backoff."""
    fake, sleeps = FakeStore(), Sleeps()
    up = Uploader(fake, Metrics(), concurrency=1, attempt_timeout=1, backoff=Backoff(sleep=sleeps))
    path = segment(tmp_path)
    real_open, failures = os.open, [3]

    def scarce_open(name: str | os.PathLike[str], flags: int, *args: object, **kwargs: object) -> int:
        if str(name).endswith(path.name) and failures[0]:
            failures[0] -= 1
            raise OSError(code, os.strerror(code), str(name))
        return real_open(name, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", scarce_open)
    await up.upload_file(path, "k", "0")
    monkeypatch.undo()
    assert failures == [0] and len(sleeps.delays) == 3
    assert [p.body for p in fake.puts] == [path.read_bytes()]


def test_a_folder_below_the_root_that_is_a_symlink_is_never_entered(tmp_path: Path) -> None:
    """Opened without following symlinks, the file relative to it: no swap between check and read."""
    root, outside = tmp_path / "hls", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "seg.ts").write_bytes(b"secret")
    (root / "0").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SegmentLost) as err:
        read_segment_file(root / "0" / "seg.ts", max_bytes=100, root=root)
    assert err.value.reason == "symlink"
    (root / "1").mkdir()
    (root / "1" / "seg.ts").write_bytes(b"\x47" * 10)
    assert read_segment_file(root / "1" / "seg.ts", max_bytes=100, root=root) == b"\x47" * 10


async def test_the_hash_is_of_the_body_the_successful_attempt_put(tmp_path: Path) -> None:
    """A retry reads the file again: what the successful PutObject sent is what is hashed."""
    fake = FakeStore(fail={"k": 1})
    path = segment(tmp_path)

    async def rewrite(delay: float) -> None:  # between the failed attempt and the next
        path.write_bytes(b"\x47" * 376)

    up = Uploader(fake, Metrics(), concurrency=1, attempt_timeout=1, backoff=Backoff(sleep=rewrite))
    done = await up.upload_file(path, "k", "0", hashed=True)
    assert [len(p.body) for p in fake.puts] == [376]
    assert done.sha256 == hashlib.sha256(fake.puts[0].body).digest() != hashlib.sha256(b"\x47" * 1880).digest()


def _count_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hops: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    return hops


async def test_a_segment_held_first_is_read_on_one_worker_thread_and_sent_from_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read once (vm/held.py); after a failure, read again from the holder on a worker thread."""
    held = opened_held(tmp_path)
    hops = _count_hops(monkeypatch)
    fake = FakeStore(fail={"live/0/b.ts": 1})
    up = Uploader(fake, Metrics(), concurrency=1, attempt_timeout=5, holder=held,
                  backoff=Backoff(sleep=Sleeps(), rng=lambda: 0.0))
    told: list[Any] = []
    for name in ("a.ts", "b.ts"):
        path = segment(tmp_path / "hls" / "0", name)
        await up.upload_file(path, f"live/0/{name}", "0", root=tmp_path / "hls", on_kept=told.append)
    assert hops == ["hold_first", "hold_first", "<lambda>", "read_and_hash"], hops  # b: kept, read again
    assert [(p.key, p.body) for p in fake.puts] == [(f"live/0/{n}", b"\x47" * 1880) for n in ("a.ts", "b.ts")]
    assert [k.kept for k in told] == [True, True] and len(held) == 2
    held.close()


async def test_a_segment_is_held_only_once_an_attempt_fails_and_its_copy_outlives_owncasts_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = opened_held(tmp_path)
    hops = _count_hops(monkeypatch)
    b = tmp_path / "hls" / "0" / "b.ts"

    async def owncast_cleans_up(delay: float) -> None:  # between b's attempts
        b.unlink()

    fake = FakeStore(fail={"live/0/b.ts": 1})
    up = Uploader(fake, Metrics(), concurrency=1, attempt_timeout=5, holder=held,
                  backoff=Backoff(sleep=owncast_cleans_up, rng=lambda: 0.0))
    path = segment(tmp_path / "hls" / "0", "a.ts")
    await up.upload_file(path, "live/0/a.ts", "0", root=tmp_path / "hls")
    assert len(held) == 0 and hops == ["read_and_hash"]  # landed at once: nothing held
    segment(tmp_path / "hls" / "0", "b.ts", 376)
    await up.upload_file(b, "live/0/b.ts", "0", root=tmp_path / "hls")
    assert hops == ["read_and_hash", "read_and_hash", "hold_kept", "read_and_hash"], hops
    assert [(p.key, p.body) for p in fake.puts] == [("live/0/a.ts", b"\x47" * 1880), ("live/0/b.ts", b"\x47" * 376)]
    kept = held.get("live/0/b.ts")
    assert held.kept == 1 and kept is not None and kept.copy is None and held.copies == 0  # landed: let go
    held.close()


async def test_the_oldest_upload_waiting_past_late_after_is_told_once_and_quick_ones_never(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """waits.on_late: told once when the oldest upload has waited late_after(), never for quicker ones.
    Its one timer is armed only once a later upload starts after ARM_AFTER, and cancelled once none waits
    (so a calm service pays nothing for it)."""
    fake = FakeStore()
    up = Uploader(fake, Metrics(), concurrency=4, attempt_timeout=30)
    told: list[float] = []
    up.waits.on_late, up.waits.late_after = lambda: told.append(asyncio.get_running_loop().time()), lambda: 0.3
    for n in range(5):  # quick ones, two at once (a segment's variants): no timer armed for them
        fake.hold(f"k/quick-{n}a.ts")
        both = [asyncio.ensure_future(up.upload_file(segment(tmp_path, f"quick-{n}{v}.ts"), f"k/quick-{n}{v}.ts", "0"))
                for v in "ab"]
        await until(lambda: f"k/quick-{n}b.ts" in fake.keys() and f"k/quick-{n}a.ts" in fake.attempts,
                    "the second landed, the first held", 10)
        assert up.waits._late is None
        fake.release(f"k/quick-{n}a.ts")
        await asyncio.gather(*both)
        assert up.waits._late is None
    assert told == []
    # Shorter from here (the pairs above ran with the real one, ARM_AFTER 0.5 s: a busy machine's pause
    # between their two starts stays far below it).
    monkeypatch.setattr(lateness, "ARM_AFTER", 0.1)
    fake.hold("k/slow.ts")
    loop = asyncio.get_running_loop()
    began = loop.time()
    slow = asyncio.ensure_future(up.upload_file(segment(tmp_path, "slow.ts"), "k/slow.ts", "0"))
    await until(lambda: loop.time() - began > 0.15, "the slow one waited ARM_AFTER", 10)
    assert up.waits._late is None and told == []  # no later upload yet
    fake.hold("k/next.ts")
    after = asyncio.ensure_future(up.upload_file(segment(tmp_path, "next.ts"), "k/next.ts", "0"))
    await until(lambda: len(told) == 1, "told of the late upload once the next one started", 10)
    assert told[0] - began >= 0.3
    await until(lambda: "k/next.ts" in fake.attempts, "the next upload under way", 10)
    for n in range(3):  # quick ones behind the late one: it is not told of again
        await up.upload_file(segment(tmp_path, f"behind-{n}.ts"), f"k/behind-{n}.ts", "0")
    assert len(told) == 1 and up.waits._late is None
    fake.release("k/slow.ts")
    await slow
    # The next one is the oldest now: told once it too has waited 0.3 s.
    await until(lambda: len(told) == 2, "told of the next one, late too", 10)
    fake.release("k/next.ts")
    await after
    assert len(told) == 2 and up.waits._late is None


async def test_a_hanging_upload_no_other_follows_is_told_as_its_attempt_times_out(tmp_path: Path) -> None:
    """A last upload arms no lateness timer: a hanging bucket is told by on_failure at its timeout."""
    fake = FakeStore()
    fake.hang = True
    up = Uploader(fake, Metrics(), concurrency=2, attempt_timeout=0.2, backoff=Backoff(base=30.0, cap=30.0))
    failures: list[float] = []
    told: list[float] = []
    up.on_failure = lambda: failures.append(asyncio.get_running_loop().time())
    up.waits.on_late, up.waits.late_after = lambda: told.append(0.0), lambda: 0.1
    began = asyncio.get_running_loop().time()
    last = asyncio.ensure_future(up.upload_file(segment(tmp_path, "last.ts"), "k/last.ts", "0"))
    try:
        await until(lambda: failures, "the hanging attempt's timeout told", 10)
        assert failures[0] - began >= 0.2 and up.waits._late is None and told == []
    finally:
        last.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await last


async def test_a_segment_whose_copy_was_dropped_and_whose_file_is_gone_is_lost_as_copy_dropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Not `deleted`; a WARNING at the first, the count in the line that says the bucket is back."""
    caplog.set_level(logging.INFO, logger="broadcaster.bucket.uploader")
    held = opened_held(tmp_path, max_bytes=1880)
    fake = FakeStore(down=True)
    up = Uploader(fake, Metrics(), concurrency=2, attempt_timeout=5, holder=held,
                  backoff=Backoff(base=0.01, cap=0.02))
    a, b = segment(tmp_path / "hls" / "0", "a.ts"), segment(tmp_path / "hls" / "0", "b.ts")
    first = asyncio.ensure_future(up.upload_file(a, "live/0/a.ts", "0", root=tmp_path / "hls"))
    await until(lambda: held.copies == 1, "a's copy kept")
    second = asyncio.ensure_future(up.upload_file(b, "live/0/b.ts", "0", root=tmp_path / "hls"))
    await until(lambda: held.evicted >= 1, "a's copy dropped for b's (VM_COPIES_MB)")
    a.unlink()  # Owncast's cleanup
    with pytest.raises(SegmentLost) as lost:
        await first
    assert lost.value.reason == "copy_dropped" and "VM_COPIES_MB" in str(lost.value)
    # /health's view of the outage meanwhile: what waits, what is kept against its bound, what is lost.
    outage = up.outage()
    assert outage is not None and outage["segments_lost"] == 1 and outage["uploads_waiting"] == 1, outage
    assert outage["copies_bytes"] == 1880 and outage["copies_bound_bytes"] == 1880, outage
    assert outage["copies_bound_by"] == "VM_COPIES_MB", outage  # tmp_path's disk has room for more
    fake.down = False
    await second  # b's copy outlives nothing here: its file is there, and it lands
    assert up.outage() is None
    said = [r.getMessage() for r in caplog.records if r.name == "broadcaster.bucket.uploader"]
    assert any(m.startswith("a segment waiting on the bucket is lost: no copy of it is left") for m in said), said
    assert any("bucket reachable again" in m and "segments lost (they exist nowhere): 1 copy_dropped" in m
               for m in said), said
    held.close()
