"""FaultProxy: a reverse proxy in front of an S3 endpoint that can make the bucket slow or down.

It forwards every request verbatim (raw path and query, every header including `Host`, so SeaweedFS
verifies botocore's SigV4 signature made for the proxy's host); only unsigned hop-by-hop headers are
dropped. Answers come back verbatim too. Modes, switched with `await proxy.set_mode(...)`:

- `pass`: forward.
- `down_503`: S3's XML `SlowDown` (or `ServiceUnavailable`) 503, as R2 overloaded or down.
- `refuse`: stop listening and close every connection (ECONNREFUSED); back in another mode, the same
  port listens again. Only requests already on an open connection are counted.
- `hang`: never answer; the proxy notes when the client gives up.
- `slow`: read request bodies at `bytes_per_second`, then forward.
- `endless_500`: a 500 whose body never ends (up to `endless_limit`); `Seen.sent` is what was sent.
- `random_status`: a seeded status in 400-599 with a body that is not S3's XML.

`counts` holds requests per mode, `requests` one `Seen` each; `observe` is shown every forwarded answer."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

import aiohttp
from aiohttp import web
from aiohttp.web_server import Server
from multidict import CIMultiDict
from yarl import URL

from broadcaster.demo.ports import Reserved, reserve_port
from tests.support.waiting import until

log = logging.getLogger(__name__)

Mode = Literal["pass", "down_503", "refuse", "hang", "slow", "endless_500", "random_status"]
MODES: tuple[Mode, ...] = ("pass", "down_503", "refuse", "hang", "slow", "endless_500", "random_status")
ENDLESS_CHUNK = 64 * 1024

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones aiohttp recomputes from the body it sends.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
              "Transfer-Encoding", "Upgrade", "Expect", "Content-Length")
)  # fmt: skip
# Its port is below Linux's ephemeral range (32768-60999) and reserved for it (broadcaster/demo/ports.py):
# while `refuse` has the port closed, no outgoing connection and none of our servers can take it.
_REBIND_TIMEOUT = 3.0

_ERROR_MESSAGES = {"SlowDown": "Please reduce your request rate.",
                   "ServiceUnavailable": "Reduce your request rate."}


@dataclass
class Seen:
    """One request as the proxy saw it."""

    mode: Mode
    method: str
    path: str  # raw path and query
    started: float  # time.monotonic()
    ended: float | None = None
    status: int | None = None  # what we answered, None when we did not
    outcome: str = "open"  # answered, forwarded, client_gave_up, dropped, upstream_error, closed
    sent: int = 0  # body bytes written (endless_500)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


class FaultProxy:
    """Reverse proxy on `host` (127.0.0.1 unless told) in front of `upstream` (SeaweedFS's S3 endpoint)."""

    def __init__(
        self, upstream: str, *, mode: Mode = "pass", endless_limit: int = 256 * 1024 * 1024, seed: int = 11,
        host: str = "127.0.0.1",
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.counts: collections.Counter[str] = collections.Counter()
        self.requests: list[Seen] = []
        self._mode: Mode = mode
        self._bytes_per_second = 0.0
        self._error_code = "SlowDown"
        self._port = 0
        self._reserved: Reserved | None = None  # its port, held for it while it lives (it binds it again)
        self._server: Server | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._client: aiohttp.ClientSession | None = None
        self._closing = asyncio.Event()
        self._request_ids = 0
        self.endless_limit = endless_limit
        self._rng = random.Random(seed)
        self.observe: Callable[[web.BaseRequest, int, bytes], None] | None = None

    # -- properties

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def seen(self, mode: Mode | None = None, method: str | None = None) -> list[Seen]:
        return [r for r in self.requests
                if (mode is None or r.mode == mode) and (method is None or r.method == method)]

    # -- switching

    async def set_mode(
        self, mode: Mode, *, bytes_per_second: float | None = None, error_code: str | None = None
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        if mode == "slow":
            if not bytes_per_second or bytes_per_second <= 0:
                raise ValueError("slow needs bytes_per_second > 0")
            self._bytes_per_second = float(bytes_per_second)
        if error_code is not None:
            self._error_code = error_code
        previous, self._mode = self._mode, mode
        log.info("fault proxy %s: %s -> %s", self.url, previous, mode)
        if mode == "refuse":
            self._stop_listening()
            self._drop_connections()
        elif self._listener is None and self._server is not None:
            await self._listen()

    async def pass_through(self) -> None:
        await self.set_mode("pass")

    async def down_503(self, code: str = "SlowDown") -> None:
        await self.set_mode("down_503", error_code=code)

    # -- life cycle

    async def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the proxy is already running")
        self._client = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60),
            # Headers the client did not send are not invented (the signed ones are all sent).
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )
        self._server = Server(self._handle, access_log=None)
        try:
            for attempt in range(5):
                # A port below the ephemeral range, reserved for it on this machine (ports.py): while it
                # "goes down" and comes back on the same port, none of our servers takes it meanwhile.
                self._release()
                self._reserved = reserve_port()
                self._port = self._reserved.ports[0]
                try:
                    await self._listen(rebind=False)
                    break
                except OSError:  # taken by a program we do not know: another one
                    if attempt == 4:
                        raise
        except BaseException:
            await self.close()
            raise
        return self

    def _release(self) -> None:
        if self._reserved is not None:
            self._reserved.release()
            self._reserved = None

    async def close(self) -> None:
        self._closing.set()  # releases hanging requests
        self._stop_listening()
        if self._server is not None:
            await self._server.shutdown(timeout=2.0)
            self._server = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        self._release()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
            self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def _listen(self, rebind: bool = True) -> None:
        """Listen on its port; when it binds it again (rebind), for a while: the old listener's
        connections may hold it a moment. A first bind says a port taken at once (OSError)."""
        server = self._server
        assert server is not None
        loop = asyncio.get_running_loop()

        async def bound() -> bool:
            try:
                self._listener = await loop.create_server(server, self.host, self._port, reuse_address=True)
            except OSError:
                if not rebind:
                    raise
                return False
            return True

        await until(bound, f"port {self._port} to listen on again", _REBIND_TIMEOUT, every=0.05)

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()  # no new connections; the kernel refuses them

    def _drop_connections(self) -> None:
        if self._server is None:
            return
        for conn in list(self._server.connections):
            conn.force_close()

    # -- requests

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        seen = Seen(self._mode, request.method, request.raw_path, time.monotonic())
        self.requests.append(seen)
        self.counts[seen.mode] += 1
        try:
            if seen.mode == "refuse":
                return self._drop(request, seen)
            if request.headers.get("Expect", "").lower() == "100-continue" and seen.mode != "hang":
                # botocore asks before sending a PutObject body; the low-level server does not answer
                # it by itself (aiohttp's router would). A hanging server never says go ahead.
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if seen.mode == "down_503":
                return await self._unavailable(request, seen)
            if seen.mode == "hang":
                return await self._hang(request, seen)
            if seen.mode == "endless_500":
                return await self._endless(request, seen)
            if seen.mode == "random_status":
                return await self._random_status(request, seen)
            return await self._forward(request, seen)
        except ConnectionError:  # the client went away while we read its body or wrote to it
            seen.outcome = "client_gave_up"
            raise asyncio.CancelledError from None
        finally:
            seen.ended = time.monotonic()

    def _drop(self, request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        seen.outcome = "dropped"
        raise asyncio.CancelledError  # nothing can be sent on an aborted connection

    async def _unavailable(self, request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        await request.read()  # like a real server: take the body, keep the connection usable
        self._request_ids += 1
        code = self._error_code
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{_ERROR_MESSAGES.get(code, code)}</Message>"
            f"<Resource>{_xml_escape(request.path)}</Resource>"
            f"<RequestId>fault-proxy-{self._request_ids}</RequestId></Error>"
        ).encode()
        seen.status, seen.outcome = 503, "answered"
        return web.Response(status=503, body=None if request.method == "HEAD" else body,
                            headers={"Content-Type": "application/xml", "Retry-After": "1",
                                     "x-amz-request-id": f"fault-proxy-{self._request_ids}"})

    async def _hang(self, request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        # Never answer; find out when the client gives up (its connection closes).
        while not self._closing.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                seen.outcome = "client_gave_up"
                break
            try:
                await asyncio.wait_for(self._closing.wait(), 0.02)
            except TimeoutError:
                pass
        else:
            seen.outcome = "closed"
            if request.transport is not None:
                request.transport.abort()
        raise asyncio.CancelledError  # nobody is left to answer

    async def _endless(self, request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=500, headers={"Content-Type": "application/xml"})
        await response.prepare(request)
        seen.status = 500
        chunk = b"<Error><Code>InternalError</Code><Message>" + b"x" * ENDLESS_CHUNK
        while seen.sent < self.endless_limit:
            await response.write(chunk)  # waits while the client does not read; raises once it is gone
            seen.sent += len(chunk)
        seen.outcome = "answered"
        await response.write_eof()
        return response

    async def _random_status(self, request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        await request.read()
        status = self._rng.randrange(400, 600)
        seen.status, seen.outcome = status, "answered"
        return web.Response(status=status, text=f"no such thing as status {status}\n")

    async def _read_slowly(self, request: web.BaseRequest) -> bytes:
        rate = self._bytes_per_second
        chunk = max(1, int(rate / 20))  # 20 small reads a second
        body = bytearray()
        began = time.monotonic()
        while True:
            data = await request.content.read(chunk)
            if not data:
                return bytes(body)
            body += data
            wait = began + len(body) / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _forward(self, request: web.BaseRequest, seen: Seen) -> web.StreamResponse:
        assert self._client is not None
        body = await (self._read_slowly(request) if seen.mode == "slow" else request.read())
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP)
        url = URL(self.upstream + request.raw_path, encoded=True)
        try:
            async with self._client.request(
                request.method, url, headers=headers, data=body if request.body_exists else None,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                if self.observe is not None:
                    self.observe(request, upstream.status, payload)
                out = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP)
                if request.method == "HEAD" and "Content-Length" in upstream.headers:
                    out["Content-Length"] = upstream.headers["Content-Length"]
                seen.status, seen.outcome = upstream.status, "forwarded"
                response = web.Response(status=upstream.status, reason=upstream.reason, headers=out)
                if request.method != "HEAD":
                    response.body = payload
                return response
        except (aiohttp.ClientError, TimeoutError) as err:
            seen.status, seen.outcome = 502, "upstream_error"
            log.warning("fault proxy: upstream %s failed: %r", self.upstream, err)
            return web.Response(status=502, text=f"fault proxy: upstream failed: {type(err).__name__}\n")


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
