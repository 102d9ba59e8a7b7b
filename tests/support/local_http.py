"""A small aiohttp app served on 127.0.0.1 at a free port, as the tests' stand-ins and proxies are; and a
port taken by another program."""

from __future__ import annotations

import socket
from typing import Self

from aiohttp import web


async def serve_local(app: web.Application, cancel_handlers: bool = False) -> tuple[web.AppRunner, str]:
    """Serve `app`; returns its runner (cleanup() stops it) and its base URL. `cancel_handlers`: a handler
    is cancelled when its client hangs up, as the service runs them (a held blocking reload)."""
    # A handler still running when the test stops it gets a second (aiohttp's default: 60 s each).
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=cancel_handlers)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


class Served:
    """`app` served (serve_local) at `url` while the `async with` lasts; a stand-in adds its routes first."""

    def __init__(self, app: web.Application | None = None, cancel_handlers: bool = False) -> None:
        self.app = app or web.Application()
        self.url = ""
        self._cancel_handlers = cancel_handlers
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        self._runner, self.url = await serve_local(self.app, self._cancel_handlers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None


def taken_port() -> socket.socket:
    """A listening socket on 127.0.0.1: its port is taken (the test closes it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock
