"""/health's p2p_trackers and the tracker_up gauge turn down when the real tracker stops or serves another
stream, and up again when it serves this one; /health's status stays what the stream makes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.tracker import LocalTracker, free_port
from broadcaster.status import trackers
from tests.support.scrape import scraped
from tests.support.service_process import moto_env, running_service
from tests.support.waiting import WAIT, until
from tests.support.webtorrent import StandInService

pytestmark = pytest.mark.integration


async def readings(url: str) -> tuple[int, dict[str, Any], float | None]:
    """/health's status code and body, and the gauge for the one tracker from /metrics."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/health") as resp:
            code, body = resp.status, await resp.json()
        samples = await scraped(http, url)
    gauge = [value for (name, _), value in samples.items() if name == "hls_broadcaster_p2p_tracker_up"]
    assert len(gauge) <= 1, gauge
    return code, body, gauge[0] if gauge else None


async def test_health_and_the_gauge_follow_the_tracker(
        tmp_path: Path, moto_url: str, owncast: OwncastEmulator, monkeypatch: pytest.MonkeyPatch,
        tracker_dir: Path) -> None:
    monkeypatch.setattr(trackers, "PROBE_INTERVAL", 0.2)
    monkeypatch.setattr(trackers, "PROBE_INTERVAL_DOWN", 0.2)
    folder = tracker_dir
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    # moto_env's bucket reads as an R2 bucket behind its public URL: with moto's 403 the service's steering
    # probe failed twice and /health said the players are steered to the VM (503), as if for the tracker.
    env = moto_env(moto_url, tmp_path, HLS_DIR=str(owncast.hls_dir), P2P_TRACKERS=url)
    async with running_service(env) as service:
        tracker = await LocalTracker(folder, service=service.url, port=port).__aenter__()
        state: dict[str, Any] = {}

        async def read() -> None:
            state["code"], state["body"], state["gauge"] = await readings(service.url)

        async def wait(up: bool, what: str, problem: str = "") -> None:
            """Until the probe's next readings say `up` in both /health and the gauge (polled, bounded)."""
            async def said() -> bool:
                await read()
                reading = state["body"]["p2p_trackers"][url]
                return bool(reading["up"] is up and state["gauge"] == (1.0 if up else 0.0)
                            and problem in (reading["problem"] or ""))

            await until(said, what, WAIT, every=0.05, detail=lambda: state)

        try:
            await wait(True, "the tracker answers")
            healthy = state["code"]
            await tracker.__aexit__(None, None, None)  # stopped (not restarted: its supervisor goes too)
            await wait(False, "the tracker is stopped", "cannot connect")
            assert state["code"] == healthy, state  # the stream is served as before: from the bucket
            tracker = await LocalTracker(folder, service=service.url, port=port).__aenter__()
            await wait(True, "the tracker is back")
            await tracker.__aexit__(None, None, None)
            async with StandInService() as another:  # a tracker serving another service's stream
                tracker = await LocalTracker(folder, service=another.url, port=port).__aenter__()
                await wait(False, "the tracker serves another stream", "refuses this stream: unknown swarm")
        finally:
            await tracker.__aexit__(None, None, None)
