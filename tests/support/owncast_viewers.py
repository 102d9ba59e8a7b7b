"""A stand-in for Owncast's viewer count, implemented as Owncast's source does it (owncast/owncast):

- `GET /api/ping` (webserver/handlers/ping.go @58fcfd9c, lines 10-15): the viewer made from the request
  (models/viewer.go, GenerateViewerFromRequest) is marked active, then 200 with no body, no CORS headers.
- the viewer's id (utils/clientId.go, current form, GenerateClientIDFromRequest and
  GetIPAddressFromRequest): md5 of the address followed by the User-Agent; the address is the first
  entry of X-Forwarded-For (split on ", ", a "::ffff:" prefix stripped, host:port split when it has a
  colon, "" when that fails) when the header is there, else the connection's address. Any client may
  send X-Forwarded-For: Owncast trusts it.
- SetViewerActive (services/stream/stats.go @45c0856, lines 68-89): nothing while no stream is
  connected; else the viewer's LastSeen is now (added when new).
- pruneViewerCount (same file, lines 99-111, run every 5 s from setupStats, line 25): viewers whose
  LastSeen is activeViewerPurgeTimeout (15 s) old or older are dropped.
- `GET /api/status`: `viewerCount` is the number of active viewers (what Owncast's page and admin show).

The purge timeout and prune interval are parameters so a test needs not wait Owncast's 15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from tests.support.local_http import serve_local


def address_of(request: web.BaseRequest) -> str:
    """GetIPAddressFromRequest."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded:
        first = forwarded.split(", ")[0].removeprefix("::ffff:")
        if ":" in first:
            return _split_host_port(first)
        return first
    return _split_host_port(_remote_addr(request))


def _remote_addr(request: web.BaseRequest) -> str:
    """Go's RemoteAddr: host:port, an IPv6 host in brackets."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return ""
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host_port(text: str) -> str:
    """net.SplitHostPort's host, or "" where it fails (Owncast logs the error and uses "")."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        return host if sep and rest.startswith(":") else ""
    host, sep, _port = text.rpartition(":")
    return host if sep and ":" not in host else ""


def client_id(request: web.BaseRequest) -> str:
    """GenerateClientIDFromRequest: md5(address + User-Agent)."""
    user_agent = request.headers.get("User-Agent", "")
    return hashlib.md5((address_of(request) + user_agent).encode()).hexdigest()  # noqa: S324 (Owncast's)


@dataclass
class Viewer:
    address: str
    user_agent: str
    last_seen: float


class OwncastViewers:
    """Owncast's /api/ping and /api/status on 127.0.0.1; `viewers` is its active set."""

    def __init__(self, *, purge_timeout: float = 15.0, prune_every: float = 5.0,
                 stream_connected: bool = True) -> None:
        self.purge_timeout = purge_timeout
        self.prune_every = prune_every
        self.stream_connected = stream_connected
        self.viewers: dict[str, Viewer] = {}
        self.pings = 0
        self._runner: web.AppRunner | None = None
        self._pruner: asyncio.Task[None] | None = None
        self.url = ""

    @property
    def viewer_count(self) -> int:
        return len(self.viewers)

    async def _ping(self, request: web.Request) -> web.Response:
        self.pings += 1
        if self.stream_connected:  # SetViewerActive
            key = client_id(request)
            known = self.viewers.get(key)
            if known is not None:
                known.last_seen = time.monotonic()
            else:
                self.viewers[key] = Viewer(address_of(request), request.headers.get("User-Agent", ""),
                                           time.monotonic())
        return web.Response(status=200)

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response({"online": self.stream_connected, "viewerCount": self.viewer_count})

    def prune(self) -> None:
        """pruneViewerCount."""
        now = time.monotonic()
        self.viewers = {k: v for k, v in self.viewers.items() if now - v.last_seen < self.purge_timeout}

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self.prune_every)
            self.prune()

    async def __aenter__(self) -> OwncastViewers:
        app = web.Application()
        app.router.add_get("/api/ping", self._ping)
        app.router.add_get("/api/status", self._status)
        self._runner, self.url = await serve_local(app)
        self._pruner = asyncio.create_task(self._prune_loop())
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        if self._runner is not None:
            await self._runner.cleanup()
