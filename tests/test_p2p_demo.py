"""`hls-broadcaster demo --p2p`: the demo starts the package's own tracker when Node.js is there, points
the viewer at it, and says so when it is not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from broadcaster.cli import build_parser
from broadcaster.demo import tracker as tracker_module
from broadcaster.demo.run import run_demo
from broadcaster.demo.tracker import TrackerUnavailable, install

pytestmark = pytest.mark.integration


def test_the_demo_has_a_p2p_switch() -> None:
    args = build_parser().parse_args(["demo", "--p2p"])
    assert args.p2p is True
    assert build_parser().parse_args(["demo"]).p2p is False


def test_without_node_the_tracker_says_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tracker_module, "which", lambda name: None)
    with pytest.raises(TrackerUnavailable, match="Node.js .* is not installed; apt install nodejs npm"):
        install(tmp_path)


async def test_demo_p2p_runs_a_tracker_the_viewer_is_told_of(tmp_path: Path) -> None:
    try:
        await asyncio.to_thread(install)  # once per lock file; skipped where npm cannot fetch it
    except TrackerUnavailable as err:
        pytest.skip(f"no tracker here: {err}")
    lines: list[str] = []
    stop = asyncio.Event()
    demo = asyncio.create_task(run_demo(port=0, p2p=True, work_dir=tmp_path / "demo", say=lines.append, stop=stop))
    try:
        async with asyncio.timeout(60):
            while not any(line.strip().startswith("Watch it:") for line in lines):
                assert not demo.done(), lines
                await asyncio.sleep(0.1)  # polling the demo's output under the timeout above
        url = next(line.split("Watch it:", 1)[1].strip() for line in lines if "Watch it:" in line)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}config.json") as r:
                config = await r.json()
            trackers = config["p2p"]["trackers"]
            assert len(trackers) == 1 and trackers[0].startswith("ws://127.0.0.1:"), config
            assert any(trackers[0] in line for line in lines if line.strip().startswith("P2P:")), lines
            # The tracker answers WebSocket connections, as the viewers' P2P Media Loader makes them.
            async with http.ws_connect(trackers[0]) as ws:
                assert not ws.closed
    finally:
        stop.set()
        async with asyncio.timeout(30):
            assert await demo == 0
    assert lines[-1] == "stopped; nothing left running."
