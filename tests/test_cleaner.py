"""Cleaner: deletes only when the spec allows, in batches, retries failures, survives a restart."""

from __future__ import annotations

import asyncio
import json
import random

from broadcaster.state.disk import dumps
from broadcaster.bucket.cleaner import Cleaner
from broadcaster.metrics import Metrics
from broadcaster.tails import Tail
from tests.support.fakes import Bucket, Clock, removed


async def test_deletes_only_after_keep_plus_margin() -> None:
    bucket, clock = Bucket(), Clock()
    c = Cleaner(bucket, Metrics(), margin=10, wall_clock=clock)
    c.schedule([removed("a", 5), removed("b", 8)])
    clock.t += 14.9
    await c.run_once()
    assert bucket.deleted == []
    clock.t += 0.2
    await c.run_once()
    assert bucket.deleted == [["a"]]
    clock.t += 3
    await c.run_once()
    assert bucket.deleted == [["a"], ["b"]] and c.pending == 0 and c.deleted == 2


async def test_batches_of_at_most_1000() -> None:
    bucket, clock = Bucket(), Clock()
    c = Cleaner(bucket, Metrics(), margin=0, wall_clock=clock)
    c.schedule([removed(f"k{i}", 1) for i in range(2500)])
    clock.t += 2
    for _ in range(3):
        await c.run_once()
    assert [len(b) for b in bucket.deleted] == [1000, 1000, 500]


async def test_failures_are_retried_later_not_lost() -> None:
    bucket, clock = Bucket(refuse={"b"}), Clock()
    metrics = Metrics()
    c = Cleaner(bucket, metrics, margin=0, retry_after=30, wall_clock=clock)
    c.schedule([removed("a", 1), removed("b", 1)])
    clock.t += 2
    await c.run_once()
    assert c.pending == 1
    bucket.refuse.clear()
    bucket.down = True
    clock.t += 31
    await c.run_once()  # the bucket is down: still pending
    assert c.pending == 1
    bucket.down = False
    clock.t += 31
    await c.run_once()
    assert bucket.deleted[-1] == ["b"] and c.pending == 0
    assert metrics.registry.get_sample_value("hls_broadcaster_cleanup_deleted_total", {"pathway": "bucket"}) == 2


async def test_pending_deletes_survive_a_restart() -> None:
    clock = Clock()
    first = Cleaner(Bucket(), Metrics(), margin=60, wall_clock=clock)
    first.schedule([removed("a", 5)])
    saved = first.snapshot()
    bucket = Bucket()
    second = Cleaner(bucket, Metrics(), margin=60, wall_clock=clock)
    second.restore(saved)
    clock.t += 64
    await second.run_once()
    assert bucket.deleted == []
    clock.t += 2
    await second.run_once()
    assert bucket.deleted == [["a"]]


async def test_a_key_left_behind_goes_at_the_next_run_and_is_saved_until_then() -> None:
    """The start check's object whose delete failed (Bucket.left_behind): due at once, kept by a restart."""
    clock = Clock()
    first = Cleaner(Bucket(), Metrics(), margin=60, wall_clock=clock)
    first.delete_soon("live/.hls-broadcaster-check-1.ts")
    bucket = Bucket()
    second = Cleaner(bucket, Metrics(), margin=60, wall_clock=clock)
    second.restore(first.snapshot())
    await second.run_once()
    assert bucket.deleted == [["live/.hls-broadcaster-check-1.ts"]] and second.pending == 0


class SlowBucket:
    """A DeleteObjects call that has started and not yet answered."""

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def delete_many(self, keys: list[str]) -> list[str]:
        self.called.set()
        await asyncio.Event().wait()  # never answers: the stop comes first
        return []


async def test_a_stop_during_a_delete_keeps_its_keys_in_the_saved_state() -> None:
    # The service stops the cleaner (cancelling the call), then saves: the batch must still be there.
    clock, bucket, metrics = Clock(), SlowBucket(), Metrics()
    c = Cleaner(bucket, metrics, margin=0, interval=0.01, wall_clock=clock)
    c.schedule([removed("a", 1), removed("b", 1), removed("c", 60)])
    clock.t += 2
    await c.start()
    async with asyncio.timeout(10):
        await bucket.called.wait()
    pending = "hls_broadcaster_cleanup_pending"
    assert [key for key, _ in _saved(c)] == ["a", "b", "c"]  # a save while the call is out
    assert c.pending == 3 and metrics.registry.get_sample_value(pending, {"pathway": "bucket"}) == 3
    c.schedule([removed("d", 60)])  # the gauge counts the batch in flight too
    assert metrics.registry.get_sample_value(pending, {"pathway": "bucket"}) == 4
    await c.stop()
    assert [key for key, _ in _saved(c)] == ["a", "b", "c", "d"] and c.pending == 4
    assert metrics.registry.get_sample_value(pending, {"pathway": "bucket"}) == 4
    after = Bucket()
    again = Cleaner(after, Metrics(), margin=0, wall_clock=clock)
    again.restore(c.snapshot())
    await again.run_once()
    assert after.deleted == [["a", "b"]]


def _saved(c: Cleaner) -> list[list[object]]:
    """The cleaner's part of the state, as a state file holds it."""
    saved: list[list[object]] = json.loads(dumps({"cleaner": c.snapshot()}))["cleaner"]
    return saved


async def test_a_snapshot_reads_as_it_was_taken_whatever_the_cleaner_does_after() -> None:
    """What snapshot gives is a value (cleaner.DueNotes): read later, after keys were deleted, noted again
    (failed deletes, clips letting go) and the notes compacted, it is what it was when taken."""
    rng = random.Random(3)
    bucket, clock = Bucket(), Clock()
    c = Cleaner(bucket, Metrics(), margin=0, retry_after=5, wall_clock=clock)
    taken: list[tuple[Tail, str]] = []
    n, held = 0, []
    for step in range(400):
        keys = [f"k{n + i}" for i in range(rng.randint(0, 4))]
        n += len(keys)
        c.schedule([removed(k, rng.uniform(1, 20)) for k in keys])
        if keys and rng.random() < 0.1:  # a clip holds one (its note stays live at the front)
            c.hold(keys[:1])
            held.append(keys[0])
        if held and rng.random() < 0.05:
            c.let_go([held.pop(0)])
        bucket.refuse = {f"k{i}" for i in range(n) if rng.random() < 0.1}  # failures are noted again
        clock.t += rng.uniform(0, 2)
        await c.run_once()
        if step % 7 == 0:
            tail = c.snapshot()
            taken.append((tail, tail.text()))
    texts = [text for _, text in taken]
    assert any("null" in t for t in texts)  # notes died behind a live one...
    assert all(json.loads(t)[:1] != [None] for t in texts)  # ...never at the front
    for tail, text in taken:
        assert tail.text() == text
