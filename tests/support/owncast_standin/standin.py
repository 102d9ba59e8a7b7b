"""Owncast's container, stood in for (tests/test_containers.py): this project's emulator writes Owncast's
folder layout to /app/data/hls, as Owncast's image does, as uid 101, until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with OwncastEmulator(Path("/app/data/hls"), resolve_settings(variants=1, segment_seconds=1)):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
