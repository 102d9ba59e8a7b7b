"""The live demo stream for the P2P browser tests (tests/test_p2p_browser.py): the emulator's stream
through the service (in this process), its segments served through a CountingProxy in front of
SeaweedFS, and, with `demo_with_tracker`, the tracker as it runs on the VM."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from broadcaster.access.tokens import VIEWER, derive
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.demo.tracker import LocalTracker, free_port
from broadcaster.service import Service
from broadcaster.settings import DEFAULT_REWIND_SECONDS
from tests.support.counting_proxy import CountingProxy, proxied_stream
from tests.support.waiting import until

# 2 s, within Owncast's usual range: a segment is listed 2 target durations before hls.js plays it,
# and the first of those is the peers' turn (viewer/p2p.js).
SEGMENT_SECONDS = 2


@dataclass
class Demo:
    s3: SeaweedS3
    proxy: CountingProxy
    service: Service


@contextlib.asynccontextmanager
async def running_demo(tmp_path: Path, seaweed: SeaweedS3, trackers: str, *, recordings: Recordings,
                       **over: str) -> AsyncIterator[Demo]:
    """The live demo stream (recordings replayed), its segments served through a CountingProxy,
    P2P_TRACKERS=trackers, the service's own REWIND_SECONDS, as it ships."""
    async with proxied_stream(tmp_path, seaweed, trackers, segment_seconds=SEGMENT_SECONDS, recordings=recordings,
                              **{"REWIND_SECONDS": str(DEFAULT_REWIND_SECONDS), **over}) as (service, proxy):
        yield Demo(seaweed, proxy, service)


@contextlib.asynccontextmanager
async def demo_with_tracker(tmp_path: Path, seaweed: SeaweedS3, tracker_dir: Path, *, recordings: Recordings,
                            **over: str) -> AsyncIterator[Demo]:
    """running_demo with the tracker as it runs on the VM, serving only this service's swarms (read from
    TRACKER_SERVICE_URL) and, for a private stream, given the viewer key as `invite tracker-key` prints it."""
    port = free_port()
    secret = over.get("PRIVATE_SECRET")
    env = {"TRACKER_VIEWER_KEY": derive(secret, VIEWER).hex()} if secret else None
    async with running_demo(tmp_path, seaweed, f"ws://127.0.0.1:{port}", recordings=recordings, **over) as demo, \
            LocalTracker(tracker_dir, service=demo.service.url, port=port, env=env) as tracker:
        # It answers "not ready" until it has read the service.
        await until(lambda: any("serving swarm" in line for line in tracker.lines), "the tracker serving the swarm",
                    30, every=0.1, detail=lambda: tracker.lines[-5:])
        yield demo
