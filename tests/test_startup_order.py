"""Start-up in any order, on real ffmpeg output and the real service: the service first, then a stream cut
at irregular keyframes beside a transcoded one (every segment listed from the first); or Owncast first (the
stream picked up at once). Every version read goes through the HLS checker; every segment listed is, in the
bucket, the file Owncast finished (the ledger)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import Ledger, OwncastEmulator, Variant, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.hls_checker import VariantSetChecker
from tests.support.observe import Observer
from tests.support.service_process import ServiceProcess, service_env
from tests.support.sse import SseReader
from tests.support.whole import assert_whole

pytestmark = pytest.mark.integration  # SeaweedFS, the emulator and the service process


def _owncast_lists(owncast: OwncastEmulator, variant: int) -> list[str]:
    return [n for n in owncast.listed_segments(variant) if "offline" not in n]


@contextlib.asynccontextmanager
async def _polling(seen: Observer) -> AsyncIterator[None]:
    """Every version read while the test waits on Owncast (a raised target drops what the old listed)."""
    async def poll() -> None:
        while True:
            await seen.poll()
            await asyncio.sleep(0.05)

    task = asyncio.create_task(poll())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a version the checker refused raises here


async def test_service_first_then_a_passthrough_stream_is_listed_from_its_first_segment(
        tmp_path: Path, seaweed: SeaweedS3) -> None:
    hls = tmp_path / "hls"
    hls.mkdir()
    variants = [Variant(640, 360, 1200, passthrough=True, audio_passthrough=True), Variant(320, 180, 250)]
    owncast = OwncastEmulator(hls, resolve_settings(variants=variants, latency_level=0, source_keyframes=[1, 3, 2]),
                              ledger=Ledger())
    env = service_env(hls, seaweed, tmp_path / "state")
    checker = VariantSetChecker(allow_resume_after_endlist=True, allow_restart=True, align_by="time")
    async with ServiceProcess(env, tmp_path / "run") as service, aiohttp.ClientSession() as http:
        seen = Observer(service.url, http, (0, 1), checker)
        try:
            async with _polling(seen):
                await owncast.start()
                await owncast.wait_for_segments(0, 4, timeout=40)
            expected = {v: _owncast_lists(owncast, v) for v in (0, 1)}
            await seen.until(lambda: all(set(expected[v]) <= set(seen.names(v)) for v in (0, 1)), 20,
                             f"every segment Owncast listed ({expected}) listed by the service")
        finally:
            await owncast.close()
        for v in (0, 1):
            assert seen.names(v)[: len(expected[v])] == expected[v]  # from the first, in order, none skipped
        await assert_whole(http, owncast.ledger,
                           [(seen.segment_url(v, name), hls / str(v) / name) for v, name in seen.urls])
        assert service.problems() == [], service.problems()


async def test_service_started_mid_stream_picks_it_up_at_once(tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3) -> None:
    hls = tmp_path / "hls"
    async with OwncastEmulator(hls, resolve_settings(variants=2, latency_level=0),
                               ledger=Ledger(), recordings=recordings) as owncast:
        await owncast.wait_for_segments(0, 4, timeout=30)
        env = service_env(hls, seaweed, tmp_path / "state")
        async with ServiceProcess(env, tmp_path / "run") as service, aiohttp.ClientSession() as http:
            started = time.monotonic()
            at_start = {v: _owncast_lists(owncast, v) for v in (0, 1)}
            seen = Observer(service.url, http, (0, 1))
            await seen.until(lambda: all(seen.names(v) for v in (0, 1)), 10, "the stream picked up")
            picked_up = time.monotonic() - started
            # The first state event came after the watcher's first scan: online (or degraded), never
            # offline for a stream already running. An unknown Last-Event-ID gets the ring from its start.
            async with http.get(f"{service.url}/live/events", headers={"Last-Event-ID": "1"}) as r:
                reader = SseReader(r)
                first_state = await reader.event()
                while first_state.type != "state":  # the reset, segments listed before it
                    first_state = await reader.event()
            assert first_state.json()["state"] in ("online", "degraded"), first_state.json()
            # From then on, every segment Owncast lists is listed too.
            async with _polling(seen):
                after = await owncast.wait_for_segments(0, len(at_start[0]) + 3, timeout=20)
            newer = [n for n in after if n not in at_start[0]]
            await seen.until(lambda: all(set(newer) <= set(seen.names(v)) for v in (0, 1)), 10,
                             f"{newer} listed in both variants")
            for v in (0, 1):
                names = seen.names(v)
                assert names[names.index(newer[0]):][: len(newer)] == newer
            # Already on disk at start: the newest ones are listed too (a couple of segments back).
            assert at_start[0][-1] in seen.names(0)
            await assert_whole(http, owncast.ledger,
                               [(seen.segment_url(v, name), hls / str(v) / name) for v, name in seen.urls])
            print(f"picked up {picked_up:.2f}s after start; Owncast had listed {len(at_start[0])} segments")
            assert service.problems() == [], service.problems()
