"""Issue 39 end to end, written by hand: Owncast's playlist names a segment while its writer still holds
the segment's last bytes (ffmpeg PUTs the playlist without waiting for the segment's answer, and Owncast
handles each request on its own). What the service lists must be, in the bucket, the file as its writer
finished it (the writer's ledger), and it must not list a segment before then.

The test decides when each tail comes: once the service has listed the segment (what it did before the
fix, at once: the bucket then holds the cut file), or after HOLD seconds in which it did not (it waits for
Owncast to close the file, as it must). The real service process, on inotify (Linux); SeaweedFS.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.ledger import Ledger
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.observe import Observer
from tests.support.owncast_writer import HandFedOwncast, real_ts_segment
from tests.support.service_process import ServiceProcess, service_env
from tests.support.whole import assert_whole

pytestmark = [pytest.mark.integration, pytest.mark.faults]

HOLD = 1.0  # seconds a tail is held at most once its playlist names it (Owncast's own: ~10 ms)
LATE = 3  # slots whose tails are held


async def listed_within(seen: Observer, name: str, seconds: float) -> bool:
    """Whether every variant lists `name` within `seconds` (a bound on the hold; the test's outcome does
    not depend on it: either way the tail comes and the bytes are compared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        await seen.poll()
        if all(name in seen.names(v) for v in seen.variants):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_segment_named_before_its_last_bytes_are_written_is_listed_whole(
    tmp_path: Path, seaweed: SeaweedS3
) -> None:
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
        await assert_whole(http, ledger, [(seen.urls[(v, n)], feed.folder(v) / n)
                                          for v in feed.variants for n in names])
        assert listed_while_held == [], f"listed while Owncast was still writing them: {listed_while_held}"
        assert await service.stop() == 0
    assert service.problems() == [], "\n".join(service.problems())
