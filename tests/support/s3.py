"""A bucket of its own for each test on its worker's one SeaweedFS server (tests/conftest.py's
`seaweed_server`): what a test does to its bucket no other test sees, and none waits for a server of
its own to start (2-3 s each, some 60 times a run)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator

from broadcaster.demo.seaweed import SeaweedS3

_numbers = itertools.count()


@contextlib.asynccontextmanager
async def bucket_of_its_own(server: SeaweedS3) -> AsyncIterator[SeaweedS3]:
    """A new public-read bucket (CORS on) on `server`, the server seen through it; deleted with its
    objects afterwards (a `weed mini` holds about 75 buckets' volumes at once)."""
    name = f"test-{next(_numbers):05d}"
    bucket = await server.make_bucket(name)
    try:
        yield bucket
    finally:
        await server.drop_bucket(name)
