"""Landings (publish/landings.py): per bucket's pathway, the uploads of segments listed before they landed
there; what landed is forgotten, what failed on one bucket stays a gap there, and a segment whose uploads
failed on every bucket's pathway is said to be nowhere (its playlist's owner makes it a gap)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from broadcaster.playlist.views import GAP, OWN
from broadcaster.publish.landings import Landings, Restored

KEY = "live/0/stream-a-1.ts"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_a_segment_is_in_a_bucket_once_its_upload_there_landed(loop: asyncio.AbstractEventLoop) -> None:
    landings = Landings(["bucket", "backup"])
    first, second = loop.create_future(), loop.create_future()
    assert not landings.waiting
    landings.pend(KEY, {"bucket": first, "backup": second, "vm": loop.create_future()})
    assert landings.waiting
    assert landings.state("bucket", KEY) is None and not landings.landed("bucket", KEY)
    assert landings.state("vm", KEY) == OWN and landings.landed("vm", KEY)  # not a bucket's: the VM holds it
    assert landings.count() == 1 and landings.keys() == {"bucket": [KEY], "backup": [KEY]}
    first.set_result(None)
    assert landings.settle(dict) == ([KEY], [])
    assert landings.state("bucket", KEY) == OWN and landings.landed("bucket", KEY)
    assert landings.keys() == {"backup": [KEY]} and landings.uploads() == [second]


def test_a_failed_upload_is_a_gap_there_and_nowhere_once_every_bucket_failed(
        loop: asyncio.AbstractEventLoop) -> None:
    landings = Landings(["bucket", "backup"])
    first, second = loop.create_future(), loop.create_future()
    landings.pend(KEY, {"bucket": first, "backup": second})
    first.set_exception(OSError("refused"))
    asked: list[int] = []

    def listed() -> dict[str, bool]:
        asked.append(1)
        return {KEY: False}

    assert landings.settle(listed) == ([], []) and asked == [1]  # the backup may still land it
    assert landings.state("bucket", KEY) == GAP and landings.state("backup", KEY) is None
    second.set_exception(OSError("refused"))
    assert landings.settle(listed) == ([], [KEY])
    assert landings.settle(lambda: {KEY: True}) == ([], [])  # a gap now: said once
    assert landings.settle(dict) == ([], []) and landings.keys() == {}  # it left every playlist: forgotten
    assert not landings.waiting


def test_a_restored_upload_waits_for_its_upload_to_start_again(loop: asyncio.AbstractEventLoop) -> None:
    landings = Landings(["bucket"])
    landings.restored({"bucket": [KEY], "gone": ["x"]})  # "gone": a pathway no longer configured
    landings.restored({"bucket": []})
    assert landings.keys() == {"bucket": [KEY]} and landings.state("bucket", KEY) is None
    assert landings.uploads() == []
    upload = loop.create_future()
    landings.landing("bucket", KEY, upload)
    landings.landing("bucket", "live/0/other.ts", loop.create_future())  # not pending: ignored
    assert landings.uploads() == [upload] and landings.keys() == {"bucket": [KEY]}
    assert not Restored().done()
