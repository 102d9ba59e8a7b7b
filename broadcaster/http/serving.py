"""An app served on one site for as long as a context is entered: the service enters one per listener
with its other parts (service.py), so each runner is cleaned up however start-up or stop ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(runner: web.BaseRunner,
                  site: Callable[[web.BaseRunner], web.BaseSite]) -> AsyncIterator[None]:
    """Sets `runner` up (its app's startup: cleanup_ctx entered) and starts `site(runner)`. On the way
    out, or when either step fails, aiohttp's cleanup: the site stops listening, the app's on_shutdown
    releases long-lived requests, handlers get the runner's shutdown_timeout, cleanup_ctx exits in
    reverse (also after a startup that failed half way)."""
    try:
        await runner.setup()
        await site(runner).start()
        yield
    finally:
        await runner.cleanup()
