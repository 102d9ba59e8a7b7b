"""Cleaner: deletes only when the spec allows, in batches, retries failures, survives a restart."""

from __future__ import annotations

import asyncio
import json

from broadcaster.state.disk import dumps
from broadcaster.bucket.cleaner import Cleaner
from broadcaster.metrics import Metrics
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
    assert metrics.registry.get_sample_value("hls_broadcaster_cleanup_deleted_total") == 2


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
    assert c.pending == 3 and metrics.registry.get_sample_value(pending) == 3
    c.schedule([removed("d", 60)])  # the gauge counts the batch in flight too
    assert metrics.registry.get_sample_value(pending) == 4
    await c.stop()
    assert [key for key, _ in _saved(c)] == ["a", "b", "c", "d"] and c.pending == 4
    assert metrics.registry.get_sample_value(pending) == 4
    after = Bucket()
    again = Cleaner(after, Metrics(), margin=0, wall_clock=clock)
    again.restore(c.snapshot())
    await again.run_once()
    assert after.deleted == [["a", "b"]]


def _saved(c: Cleaner) -> list[list[object]]:
    """The cleaner's part of the state, as a state file holds it."""
    saved: list[list[object]] = json.loads(dumps({"cleaner": c.snapshot()}))["cleaner"]
    return saved
