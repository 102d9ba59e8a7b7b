"""A small aiohttp app served on 127.0.0.1 at a free port, as the tests' stand-ins and proxies are."""

from __future__ import annotations

from aiohttp import web


async def serve_local(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve `app`; returns its runner (cleanup() stops it) and its base URL."""
    # A handler still running when the test stops it gets a second (aiohttp's default: 60 s each).
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
