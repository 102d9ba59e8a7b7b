"""An app served on one site for as long as a context is entered (one per listener, service.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(runner: web.BaseRunner,
                  site: Callable[[web.BaseRunner], web.BaseSite]) -> AsyncIterator[None]:
    """Sets `runner` up and starts `site(runner)`; on the way out, or on failure, aiohttp's cleanup."""
    try:
        await runner.setup()
        await site(runner).start()
        yield
    finally:
        await runner.cleanup()
