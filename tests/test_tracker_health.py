"""The service watches the P2P tracker its viewers are told to use: /health's p2p_trackers and the
hls_broadcaster_p2p_tracker_up gauge (read as Prometheus reads it) turn down when the real tracker
stops or serves another stream, and up again when it serves this one (read from this service, with a
live stream from the Owncast emulator); /health's status stays what the stream makes it (viewers play
from the bucket without a tracker)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from moto.server import ThreadedMotoServer

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.tracker import LocalTracker, free_port
from broadcaster.settings import SETTINGS
from broadcaster.status import trackers
from tests.support.public_bucket import readable_by_anyone
from tests.support.scrape import scraped
from tests.support.service_process import running_service
from tests.support.waiting import WAIT, until
from tests.support.webtorrent import StandInService

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                      region_name="us-east-1")
    s3.create_bucket(Bucket="probe")
    # As an R2 bucket behind its public URL: with moto's 403 the service's steering probe failed twice and
    # /health said the players are steered to the VM (503), which a test could read as the tracker's.
    readable_by_anyone(s3, "probe")
    yield url
    server.stop()


async def readings(url: str) -> tuple[int, dict[str, Any], float | None]:
    """/health's status code and body, and the gauge for the one tracker from /metrics."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/health") as resp:
            code, body = resp.status, await resp.json()
        samples = await scraped(http, url)
    gauge = [value for (name, _), value in samples.items() if name == "hls_broadcaster_p2p_tracker_up"]
    assert len(gauge) <= 1, gauge
    return code, body, gauge[0] if gauge else None


async def test_health_and_the_gauge_follow_the_tracker(tmp_path: Path, s3_url: str, owncast: OwncastEmulator,
                                                       monkeypatch: pytest.MonkeyPatch, tracker_dir: Path) -> None:
    monkeypatch.setattr(trackers, "PROBE_INTERVAL", 0.2)
    monkeypatch.setattr(trackers, "PROBE_INTERVAL_DOWN", 0.2)
    folder = tracker_dir
    env = {k: v for k, v in os.environ.items() if k not in {s.name for s in SETTINGS}}
    env.update(HLS_DIR=str(owncast.hls_dir), S3_ENDPOINT_URL=s3_url, AWS_ACCESS_KEY_ID="k",
               AWS_SECRET_ACCESS_KEY="s", AWS_BUCKET_NAME="probe", R2_PUBLIC_URL=f"{s3_url}/probe", PORT="0",
               STATE_DIR=str(tmp_path / "state"))
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    async with running_service({**env, "P2P_TRACKERS": url}) as service:
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
