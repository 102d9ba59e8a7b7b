"""A pass-through proxy that counts the GETs of segment files and the bytes of their answers: in front
of the S3 server, what the bucket sees whatever the browsers cache (the P2P browser test and bench.p2p);
in front of the service, what the VM's pathway put on the wire, answers a player gave up on included
(tests/test_steering_browser.py). It can also damage the segments it is told to (`corrupt`), as a bucket
holding bad bytes would serve them."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.ports import kept_port
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.service import Service
from tests.support.local_http import serve_local
from tests.support.service_process import running_service, service_env

SEGMENT_SUFFIXES = (".ts", ".m4s", ".mp4")
AGENT_TAG = "hb-address/"  # a browser context's User-Agent ends with this and its address
_AGENT_ADDRESS = re.compile(re.escape(AGENT_TAG) + r"(\S+)$")


def sequence(path: str) -> int:
    """The number in a segment's file name (the emulator's names count up)."""
    digits = "".join(c if c.isdigit() else " " for c in path.rsplit("/", 1)[-1]).split()
    return int(digits[-1]) if digits else -1


@dataclass(frozen=True)
class Answer:
    """One answer to a segment request, as the proxy passed it on."""

    at: float  # time.monotonic() when the upstream's whole answer was read
    path: str
    status: int
    size: int  # body bytes
    address: str = ""  # the client's, as the proxy named it (address_from_agent)


@dataclass
class CountingProxy:
    """Passes every request to the S3 server; counts viewers' segment GETs by path (not the probe's)."""

    upstream: str  # scheme://host:port
    gets: collections.Counter[str] = field(default_factory=collections.Counter)
    log: list[tuple[float, str]] = field(default_factory=list)  # (time.time(), path) of each segment GET
    # Segment GETs by (User-Agent, path): a test names each browser context in its user agent.
    gets_by_agent: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    served: set[str] = field(default_factory=set)  # SHA-256 (hex) of every segment body the bucket served
    url: str = ""
    # Paths whose bytes are served damaged: one byte flipped in the middle of every 16 KiB (as
    # tests.support.browser.ALTER_P2P_UPLOADS does to what a hostile peer sends).
    corrupt: Callable[[str], bool] = lambda path: False
    corrupted: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)  # every segment request's answer, the probe's too
    # (came, answered, path and query, status) of every request passed on: when a page stands still, whether
    # its request reached the service, and how long the service took to answer it.
    trace: list[tuple[float, float, str, int]] = field(default_factory=list)
    # Pass the client's Host on, as a reverse proxy in front of the service does (cloudflared, nginx with
    # deploy/nginx-cache.conf): the service names it in the multivariant playlist's VM pathway URIs.
    keep_host: bool = False
    # Shown every answer passed on: the request, the upstream's status and body (as it came, gzipped or not).
    observe: Callable[[web.Request, int, bytes], None] | None = None
    # Name each client to the service in CF-Connecting-IP, as cloudflared does, by the address its
    # User-Agent ends with (`hb-address/<address>`: a test gives each browser context its own, AGENT_TAG).
    address_from_agent: bool = False
    adds: dict[str, str] = field(default_factory=dict)  # headers added to every answer, as a CDN adds its own

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # The service's own probe of the public URL (every second) is not a viewer's GET.
        segment = (request.method == "GET" and request.path.endswith(SEGMENT_SUFFIXES)
                   and not request.headers.get("User-Agent", "").startswith("hls-broadcaster/"))
        if segment:
            self.gets[request.path] += 1
            self.log.append((time.time(), request.path))
            self.gets_by_agent[(request.headers.get("User-Agent", ""), request.path)] += 1
        came = time.monotonic()
        dropped = ("content-length",) if self.keep_host else ("host", "content-length")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        address = ""
        if self.address_from_agent:
            tag = _AGENT_ADDRESS.search(request.headers.get("User-Agent", ""))
            if tag is not None:
                address = headers["CF-Connecting-IP"] = tag[1]
        async with self.session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                        data=await request.read(), allow_redirects=False) as upstream:
            body = await upstream.read()
            if self.observe is not None:
                self.observe(request, upstream.status, body)
            self.trace.append((came, time.monotonic(), request.path_qs, upstream.status))
            if request.path.endswith(SEGMENT_SUFFIXES):
                self.answers.append(Answer(time.monotonic(), request.path, upstream.status, len(body), address))
            if segment and upstream.status == 200:
                self.served.add(hashlib.sha256(body).hexdigest())
            if segment and upstream.status == 200 and self.corrupt(request.path):
                body = damaged(body)
                self.corrupted.append(request.path)
            # The body as it came (auto_decompress off), so its Content-Encoding stays with it (the
            # service gzips playlists).
            passed = {k: v for k, v in upstream.headers.items()
                      if k.lower() not in ("content-length", "transfer-encoding", "connection")}
            passed.update(self.adds)
            return web.Response(status=upstream.status, headers=passed, body=body)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner, self.url = await serve_local(app)

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.session.close()


def damaged(body: bytes) -> bytes:
    """`body` with one byte flipped in the middle of every 16 KiB."""
    out = bytearray(body)
    for start in range(0, len(out), 16384):
        out[start + min(8192, (len(out) - start) // 2)] ^= 0xFF
    return bytes(out)


# A port nothing listens on (connections are refused), reserved until this process ends so none of our
# servers binds it meanwhile (broadcaster/demo/ports.py).
closed_port = kept_port


@contextlib.asynccontextmanager
async def proxied_stream(folder: Path, s3: SeaweedS3, trackers: str, *, segment_seconds: int,
                         recordings: Recordings | None = None, **over: str
                         ) -> AsyncIterator[tuple[Service, CountingProxy]]:
    """The emulator's live stream (one variant: every viewer on the same segments, one swarm) through
    the service, its segments served through a CountingProxy in front of `s3`; P2P_TRACKERS=trackers.
    recordings: the transcoder's encoding made once and replayed (conftest's `recordings`), else
    encoded as it goes."""
    parts = urlsplit(s3.public_url)
    proxy = CountingProxy(f"{parts.scheme}://{parts.netloc}")
    await proxy.start()
    try:
        async with OwncastEmulator(folder / "hls", resolve_settings(segment_seconds=segment_seconds, variants=1),
                                   recordings=recordings) as owncast:
            env = service_env(
                folder / "hls", s3, folder / "state", WINDOW_SECONDS="8",
                R2_PUBLIC_URL=proxy.url + parts.path, P2P_TRACKERS=trackers,
                # Viewers on one machine: no STUN server outside. They chose to share, and one is enough
                # (P2P_START_ON, P2P_MIN_VIEWERS): what runs here is how P2P shares, not when it may.
                **{"P2P_STUN_SERVERS": "none", "P2P_START_ON": "true", "P2P_MIN_VIEWERS": "1", **over},
            )
            async with running_service(env) as service:
                await owncast.wait_for_segments(0, 3, timeout=30)
                yield service, proxy
    finally:
        await proxy.close()
