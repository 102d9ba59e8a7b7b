"""Errors that repeat through a bucket outage are logged at most once per kind per 30 s, with a count:
the cleaner's deletes (a run every 5 s) and the playlist mirror's writes (a flapping bucket)."""

from __future__ import annotations

import logging

import pytest

from broadcaster.bucket.cleaner import Cleaner
from broadcaster.metrics import Metrics
from broadcaster.bucket.mirror import PlaylistMirror
from tests.support.fakes import Bucket, Clock, FakeStore, removed, version
from tests.support.waiting import until


def messages(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == level]


async def test_cleaner_delete_failures_through_an_outage_are_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "broadcaster.bucket.cleaner")
    bucket, clock = Bucket(down=True), Clock()
    c = Cleaner(bucket, Metrics(), margin=0, retry_after=0, wall_clock=clock)
    c.schedule([removed("a", 1), removed("b", 1)])
    for _ in range(20):  # 20 runs, 100 s of a 5 s cleaner interval
        clock.t += 5
        await c.run_once()
    assert messages(caplog, "broadcaster.bucket.cleaner", logging.WARNING) == [
        "deleting 2 old segments failed (ServiceUnavailable); will retry"]
    bucket.down = False
    clock.t += 5
    await c.run_once()
    assert c.deleted == 2


async def test_a_flapping_bucket_does_not_flood_the_mirror_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "broadcaster.bucket.mirror")
    store = FakeStore(flapping=True)  # a throttled bucket
    # No pace between writes to a key (R2's one a second is tested in test_mirror): 40 paced writes
    # would span more than the log's 30 s and rightly give a second line.
    m = PlaylistMirror(store, Metrics(), attempt_timeout=1.0, min_interval=0.0)
    try:
        for n in range(1, 21):
            m.offer("live/0/playlist.m3u8", version(n), "c")
            await until(lambda: m.written("live/0/playlist.m3u8") is not None
                        and m.written("live/0/playlist.m3u8").last_sequence == n)  # type: ignore[union-attr]
    finally:
        await m.close()
    assert len(store.attempts) >= 40
    assert len(messages(caplog, "broadcaster.bucket.mirror", logging.WARNING)) == 1
    assert len(messages(caplog, "broadcaster.bucket.mirror", logging.INFO)) == 1
    assert len(messages(caplog, "broadcaster.bucket.mirror", logging.DEBUG)) >= 20  # each failure, at DEBUG
