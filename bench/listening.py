"""The service's app on a listener as the service opens it (service.py's _listen), for the benches that
time requests over sockets (bench/serve.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def as_service(app: web.Application, port: int, limit: int = 4096) -> AsyncIterator[None]:
    """`app` on 127.0.0.1:port as the service listens (service.py's _listen): aiohttp's runner with its
    keep-alive and handler_cancellation, behind the connection gate with the app's quick answers."""
    from broadcaster.http import limits
    from broadcaster.http.connections import KEEPALIVE_TIMEOUT, GatedSite, GateOptions
    from broadcaster.http.keys import QUICK
    from broadcaster.http.serving import serving

    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_TIMEOUT,
                           handler_cancellation=True)
    options = GateOptions(limit=limit, quick=app.get(QUICK))
    async with serving(runner, lambda r: GatedSite(r, "127.0.0.1", port, options, backlog=limits.ACCEPT_BACKLOG)):
        yield
