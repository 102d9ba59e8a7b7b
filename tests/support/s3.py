"""One SeaweedFS server for a whole run, and a bucket of its own for each test on it (conftest's
`seaweed_server` and `seaweed`): no test sees another's bucket, and none waits 2-3 s for a server.
With pytest-xdist the controller starts it before its workers (RunWideServer) and stops it after them;
each worker attaches to it. Run without workers, the session starts one of its own."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from broadcaster.demo.seaweed import SeaweedS3

_numbers = itertools.count()
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")  # in every bucket's name: the server is the run's


@contextlib.asynccontextmanager
async def bucket_of_its_own(server: SeaweedS3) -> AsyncIterator[SeaweedS3]:
    """A new public-read bucket (CORS on) on `server`, the server seen through it; deleted with its
    objects afterwards (a `weed mini` holds about 75 buckets' volumes at once)."""
    name = f"test-{_WORKER}-{next(_numbers):05d}"
    bucket = await server.make_bucket(name)
    try:
        yield bucket
    finally:
        await server.drop_bucket(name)


class RunWideServer:
    """The run's shared server, in the xdist controller (no event loop of its own there: this one runs
    only to start and to stop it). weed dies with the controller if that is killed (setpriv)."""

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="hls-broadcaster-seaweed-"))
        self._loop = asyncio.new_event_loop()
        self._server = SeaweedS3(self._folder, discard=True, shared=True)

    def start(self) -> dict[str, Any]:
        """Start it; what a worker attaches with (SeaweedS3.describe)."""
        try:
            self._loop.run_until_complete(self._server.start())
        except BaseException:
            self.stop()
            raise
        return self._server.describe()

    def stop(self) -> None:
        try:
            self._loop.run_until_complete(self._server.close())
        finally:
            self._loop.close()
            shutil.rmtree(self._folder, ignore_errors=True)
