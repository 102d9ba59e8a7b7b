"""The live demo stack in a test, as `hls-broadcaster demo` runs it: SeaweedFS, the Owncast emulator
(1 s segments) and the service as a process (ServiceProcess), started together and stopped together."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.service_process import ServiceProcess, service_env


@dataclass
class LiveDemo:
    s3: SeaweedS3
    owncast: OwncastEmulator
    service: ServiceProcess


@contextlib.asynccontextmanager
async def live_demo(folder: Path, recordings: Recordings | None = None, **env: str) -> AsyncIterator[LiveDemo]:
    """Everything under `folder`; `env`: more of the service's settings (service_env's); recordings: the
    transcoder's encoding replayed (conftest's `recordings`)."""
    async with (SeaweedS3(folder / "seaweed", discard=True) as seaweed,
                OwncastEmulator(folder / "hls", resolve_settings(segment_seconds=1), recordings=recordings) as owncast):
        async with ServiceProcess(service_env(folder / "hls", seaweed, folder / "state", **env),
                                  folder / "service") as service:
            yield LiveDemo(seaweed, owncast, service)
