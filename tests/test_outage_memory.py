"""The memory an outage costs: while the bucket refuses every upload, each waiting upload is a small
record and a task, never its segment's bytes (bucket/uploader.py's FirstBody). The bytes an upload must
send again are read from Owncast's file or from the copy on disk (bucket/held.py) at each attempt, so
the service's memory does not grow by a segment per upload for as long as the outage lasts.

Measured with tracemalloc (every Python allocation, the bodies included), each way an upload is made:
without a holder (PATHWAYS=bucket), with one that holds a segment only once an attempt fails, and with one
that holds it first (a pathway lists what the VM holds). Before the fix each waiting upload kept about
its segment's size (66 KB per upload of a 59 KB segment); now a few KB of task and record."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from broadcaster.bucket.held import Held
from broadcaster.bucket.uploader import Backoff, Uploader
from broadcaster.metrics import Metrics
from tests.support.fakes import FakeStore
from tests.support.waiting import until

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
        (tmp_path / "state").mkdir()
        held = Held(hls, tmp_path / "state", max_bytes=UPLOADS * SEGMENT * 2, keep_for=600.0, buckets=("bucket",))
        held.open()
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
