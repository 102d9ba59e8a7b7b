"""The memory an outage costs: each waiting upload is a small record and a task, never its segment's
bytes, which are read again from Owncast's file or the copy on disk at each attempt. Measured with
tracemalloc, each way an upload is made: no holder, a holder once an attempt fails, a holder first."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from broadcaster.bucket import turns
from broadcaster.vm.held import Held
from broadcaster.bucket.uploader import Backoff, Uploader
from broadcaster.metrics import Metrics
from tests.support.fakes import FakeStore
from tests.support.waiting import until
from tests.support.world import opened_held

UPLOADS = 40
SEGMENT = 256 * 1024  # bytes: far above what a waiting upload may cost
PER_UPLOAD = 16 * 1024  # the bound per waiting upload: a sixteenth of its segment
CONCURRENCY = 4  # attempts at once, each with its body in memory while it is sent


def _segments(hls: Path) -> list[Path]:
    (hls / "0").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(UPLOADS):
        path = hls / "0" / f"stream-{i}.ts"
        path.write_bytes(bytes([0x47]) * SEGMENT)  # a distinct file each, the same bytes (no compression here)
        paths.append(path)
    return paths


@pytest.mark.parametrize("way", ["no_holder", "held_once_failed", "held_first"])
async def test_waiting_uploads_keep_no_segment_in_memory(tmp_path: Path, way: str) -> None:
    hls = tmp_path / "hls"
    paths = _segments(hls)
    held: Held | None = None
    if way != "no_holder":
        held = opened_held(tmp_path, max_bytes=UPLOADS * SEGMENT * 2)
    store = FakeStore(down=True)
    up = Uploader(store, Metrics(), concurrency=CONCURRENCY, attempt_timeout=5, holder=held,
                  backoff=Backoff(base=0.01, cap=0.05))
    told: list[Any] = []
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        tasks = [asyncio.ensure_future(up.upload_file(
            path, f"live/0/{path.name}", "0", root=hls,
            on_kept=told.append if way == "held_first" else None)) for path in paths]
        # Every upload has failed twice at least: each waits out a backoff between attempts.
        await until(lambda: len(store.attempts) >= 2 * UPLOADS and up.waiting()[0] == UPLOADS,
                    "every upload failed twice and waits", 30)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if held is not None:
        held.close()
    # The attempts under way hold their bodies (CONCURRENCY of them at most); the uploads waiting, none.
    bound = CONCURRENCY * SEGMENT + UPLOADS * PER_UPLOAD
    assert grown < bound, (f"{UPLOADS} uploads waiting take {grown / 1024:.0f} KB, over {bound / 1024:.0f} KB "
                           f"(segments of {SEGMENT // 1024} KB)")
    if way == "held_first":
        assert len(told) == UPLOADS and all(k.kept for k in told)


COPIES = 10  # the copies VM_COPIES_MB holds here
OWNCAST_KEEPS = 3  # Owncast's files left on disk


async def test_an_outage_past_the_copies_bound_costs_no_more_memory_as_it_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the copies' bound only uploads with bytes on disk wait; memory stays flat."""
    monkeypatch.setattr(turns, "SWEEP_EVERY", 0.0)
    hls = tmp_path / "hls"
    segment = 4096
    held = opened_held(tmp_path, max_bytes=COPIES * segment)
    store = FakeStore(down=True)
    # The production backoff: a turn per up to 15 s, as in a long outage.
    up = Uploader(store, Metrics(), concurrency=CONCURRENCY, attempt_timeout=5, holder=held, backoff=Backoff())
    live: set[asyncio.Future[Any]] = set()
    lost: list[str] = []

    def ended(task: asyncio.Future[Any]) -> None:
        live.discard(task)
        if not task.cancelled() and task.exception() is not None:
            lost.append(getattr(task.exception(), "reason", "?"))

    async def stream(first: int, last: int) -> None:
        for i in range(first, last):
            path = hls / "0" / f"stream-{i}.ts"
            path.write_bytes(i.to_bytes(4, "big") * (segment // 4))
            task = asyncio.ensure_future(up.upload_file(path, f"live/0/{path.name}", "0", root=hls))
            live.add(task)
            task.add_done_callback(ended)
            await until(lambda: f"live/0/{path.name}" in store.attempts, "its first attempt refused", 10,
                        every=0.001)
            (hls / "0" / f"stream-{i - OWNCAST_KEEPS}.ts").unlink(missing_ok=True)  # Owncast's cleanup

    tracemalloc.start()
    try:
        await stream(0, 150)
        gc.collect()
        at_150, waiting_150 = tracemalloc.get_traced_memory()[0], up.waiting()[0]
        await stream(150, 300)
        gc.collect()
        at_300, waiting_300 = tracemalloc.get_traced_memory()[0], up.waiting()[0]
    finally:
        tracemalloc.stop()
    for task in list(live):
        task.cancel()
    await asyncio.gather(*live, return_exceptions=True)
    held.close()
    # Waiting: the copies, Owncast's files, and those lost in the last second not swept yet.
    bound = COPIES + OWNCAST_KEEPS + 2
    assert waiting_150 <= bound and waiting_300 <= bound, (waiting_150, waiting_300)
    assert len(lost) >= 300 - 2 * bound and set(lost) == {"copy_dropped"}, (len(lost), set(lost))
    # Flat but for what lives by time (each HeldFile for its URL's life): under 1 KB per segment.
    grown = at_300 - at_150
    assert grown < 150 * 1024, f"{grown / 1024:.1f} KB more after 150 more segments ({waiting_300} waiting)"
