"""A pass-through proxy in front of the S3 server that counts the GETs of segment files: what the
bucket sees, whatever the browsers cache (the P2P browser test and bench.p2p)."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

SEGMENT_SUFFIXES = (".ts", ".m4s", ".mp4")


def sequence(path: str) -> int:
    """The number in a segment's file name (the emulator's names count up)."""
    digits = "".join(c if c.isdigit() else " " for c in path.rsplit("/", 1)[-1]).split()
    return int(digits[-1]) if digits else -1


@dataclass
class CountingProxy:
    """Passes every request to the S3 server; counts the GETs of segment files by path."""

    upstream: str  # scheme://host:port
    gets: collections.Counter[str] = field(default_factory=collections.Counter)
    log: list[tuple[float, str]] = field(default_factory=list)  # (time.time(), path) of each segment GET
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.endswith(SEGMENT_SUFFIXES):
            self.gets[request.path] += 1
            self.log.append((time.time(), request.path))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self.session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                        data=await request.read(), allow_redirects=False) as upstream:
            body = await upstream.read()
            passed = {k: v for k, v in upstream.headers.items()
                      if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")}
            return web.Response(status=upstream.status, headers=passed, body=body)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.session.close()
