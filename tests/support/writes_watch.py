"""When a file in Owncast's folder counts as finished (broadcaster/source/writes.py), as the service
decides it: `Writes` fed by a running watcher, and the waits the tests judge it by."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from broadcaster.metrics import Metrics
from broadcaster.source import inotify
from broadcaster.source.watcher import HlsWatcher
from broadcaster.source.writes import QUIET, UNHEARD_QUIET, Finish, Writes
from tests.support.fakes import Sink
from tests.support.scrape import total
from tests.support.waiting import TimedOut, until

if TYPE_CHECKING:  # a type only: test_watcher, a unit test, loads no emulator (tests/test_suite_rules.py)
    from tests.support.observe import Observer

KERNEL = pytest.mark.skipif(not inotify.available(), reason="inotify is Linux only")
# Both watch paths: as Writes' and HlsWatcher's `kernel`, and as the service's HLS_WATCH.
PATHS = [pytest.param(True, id="inotify", marks=KERNEL), pytest.param(False, id="watchfiles")]
WATCHES = [pytest.param("auto", id="inotify", marks=KERNEL), pytest.param("watchfiles", id="watchfiles")]


@contextlib.asynccontextmanager
async def watching(root: Path, kernel: bool, *, quiet: float = QUIET, unheard_quiet: float = UNHEARD_QUIET,
                   lease: bool = True) -> AsyncIterator[Writes]:
    """Writes fed by a running HlsWatcher (inotify or watchfiles) on `root`, once its watch has begun;
    variant folder 0 made. `lease`: the kernel is asked who writes (else the events and the file decide,
    as where Owncast's files are another user's)."""
    (root / "0").mkdir(exist_ok=True)
    w = Writes(root, kernel=kernel, quiet=quiet, unheard_quiet=unheard_quiet, lease=lease)
    watcher = HlsWatcher(root, Sink(), Metrics(), kernel=kernel, writes=w)
    await watcher.start()
    try:
        if kernel:
            await until(lambda: w._exact, "the kernel watch began")
        yield w
    finally:
        await watcher.stop()


async def still_waiting(wait: asyncio.Future[Finish], looks: int, every: float = 0.05) -> None:
    """`wait` has not ended over `looks` looks `every` seconds apart."""
    for _ in range(looks):
        await asyncio.wait({wait}, timeout=every)
        assert not wait.done(), f"taken for {wait.result()} while its writer had not finished it"


async def listed_within(seen: Observer, name: str, seconds: float) -> bool:
    """Whether every variant lists `name` within `seconds`: a bound on a hold, not on the outcome (either
    way the writer finishes the file and the bytes are compared)."""
    async def listed() -> bool:
        await seen.poll()
        return all(name in seen.names(v) for v in seen.variants)

    try:
        return bool(await until(listed, f"{name} listed in every variant", seconds, every=0.05))
    except TimedOut:
        return False


async def unfinished(seen: Observer) -> float:
    """How many segments of variant 0 the service has seen being written (segments_unfinished_total)."""
    return total(await seen.metrics(), "hls_broadcaster_segments_unfinished_total", variant="0")
