"""The connection gate (broadcaster/http/connections.py) on a real aiohttp listener, with raw sockets."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from broadcaster.http.connections import GatedSite, GateOptions, install_accept_error_handler
from broadcaster.lograte import RateLimitedLog
from broadcaster.metrics import ConnectionMetrics
from tests.support import raw_http
from tests.support.waiting import until

HELLO = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
HOLD = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass
class Listener:
    site: GatedSite
    port: int
    release: asyncio.Event
    held: list[int]
    registry: CollectorRegistry
    clients: list[asyncio.StreamWriter]

    def rejected(self, reason: str) -> float:
        value = self.registry.get_sample_value("hls_broadcaster_connections_rejected_total", {"reason": reason})
        return value or 0.0

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.clients.append(writer)
        return reader, writer

    async def sent_before_accepted(self, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A client whose request is in the service's socket before the service gets to the connection."""
        sock = socket.create_connection(("127.0.0.1", self.port))  # the kernel completes it, not the loop
        sock.sendall(request)
        reader, writer = await asyncio.open_connection(sock=sock)
        self.clients.append(writer)
        return reader, writer

    async def until_open(self, n: int) -> None:
        await until(lambda: self.site.gate.open == n, f"{n} connections open", 5, every=0.01,
                    detail=lambda: self.site.gate.open)


BIG = b"x" * (16 << 20)  # more than the kernel buffers between the two ends of a loopback connection


@asynccontextmanager
async def listening(limit: int, header_timeout: float = 10.0,
                    write_timeout: float = 30.0) -> AsyncIterator[Listener]:
    release = asyncio.Event()
    held: list[int] = []

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def hold(request: web.Request) -> web.Response:
        held.append(1)
        await release.wait()
        return web.Response(text="released")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=BIG)

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/hello", hello)
    app.router.add_get("/hold", hold)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    registry = CollectorRegistry()
    site = GatedSite(runner, "127.0.0.1", 0, GateOptions(limit=limit, header_timeout=header_timeout,
                                                          write_timeout=write_timeout, metrics=ConnectionMetrics(registry)))
    await site.start()
    listener = Listener(site, runner.addresses[0][1], release, held, registry, [])
    try:
        yield listener
    finally:
        release.set()
        for writer in listener.clients:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in listener.clients), return_exceptions=True)
        await runner.cleanup()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with listening(limit=2) as lst:
        yield lst


async def answer(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes the connection."""
    async with asyncio.timeout(5):
        return await reader.read()


async def response(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await raw_http.answer(reader)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await answer(reader) == b""
    except ConnectionResetError:
        return True


async def test_past_the_cap_with_every_connection_busy_a_quick_503_or_a_little_overdraft(listener: Listener) -> None:
    busy = [await listener.connect() for _ in range(2)]
    for _, w in busy:
        w.write(HOLD)
    await until(lambda: len(listener.held) >= 2, "two held requests", 5, every=0.01)
    reader, _ = await listener.connect()  # nothing sent yet, nothing idle to close: 503
    text = await answer(reader)
    assert text.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nRetry-After: 2\r\n" in text and b"\r\nConnection: close\r\n" in text
    assert listener.rejected("connections") == 1
    # One whose request is already there (a health check) is let in a little past the cap.
    reader, _ = await listener.sent_before_accepted(HELLO)
    assert (await response(reader)).endswith(b"hello")
    # The busy ones are served as usual once they are done.
    listener.release.set()
    for r, w in busy:
        assert (await response(r)).endswith(b"released")
        w.close()


async def test_at_the_cap_an_idle_connection_makes_room(listener: Listener) -> None:
    idle = [await listener.connect() for _ in range(2)]  # connected, never asking
    await listener.until_open(2)
    reader, _ = await listener.sent_before_accepted(HELLO)
    assert (await response(reader)).endswith(b"hello")
    assert await closed_by_server(idle[0][0])  # the oldest idle one went
    assert listener.rejected("idle_evicted") == 1 and listener.rejected("connections") == 0
    # The other one is still there and served when it asks.
    idle[1][1].write(HELLO)
    assert (await response(idle[1][0])).endswith(b"hello")


async def test_at_the_cap_a_kept_alive_connection_between_requests_makes_room(listener: Listener) -> None:
    first = await listener.connect()
    first[1].write(HELLO)
    assert (await response(first[0])).endswith(b"hello")  # kept alive, idle now
    second = await listener.connect()
    second[1].write(HOLD)
    await until(lambda: listener.held, "a held request", 5, every=0.01)
    reader, _ = await listener.sent_before_accepted(HELLO)
    assert (await response(reader)).endswith(b"hello")
    assert await closed_by_server(first[0])
    listener.release.set()
    assert (await response(second[0])).endswith(b"released")  # the busy one was left alone


@pytest.mark.parametrize("sent", [True, False], ids=["request-there", "request-after"])
async def test_a_flood_accepted_in_one_batch_cannot_lock_a_newcomer_out(sent: bool) -> None:
    """asyncio accepts a batch of connections and connects them one by one before reading any: half-sent
    and idle ones ahead of a client in the batch must not get it a 503, and a complete request waiting unread
    there is not closed to make room."""
    crowd: list[socket.socket] = []
    try:
        async with listening(limit=4) as lst:
            busy = await lst.connect()
            busy[1].write(HOLD)
            await until(lambda: lst.held, "a held request", 5, every=0.01)
            # Blocking sockets, no await: the loop does not run, so all of them wait in the listen queue (the
            # kernel completes the handshakes) and the loop accepts them in one go (backlog 128).
            for i in range(60):
                sock = socket.create_connection(("127.0.0.1", lst.port))
                crowd.append(sock)
                if i == 0:
                    sock.sendall(HELLO)  # a client's request, ahead of the crowd
                elif i % 2:
                    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # a head without its blank line
            sock = socket.create_connection(("127.0.0.1", lst.port))
            if sent:
                sock.sendall(HELLO)
            reader, writer = await asyncio.open_connection(sock=sock)
            lst.clients.append(writer)
            if not sent:
                writer.write(HELLO)
            assert (await response(reader)).endswith(b"hello")
            assert lst.rejected("idle_evicted") >= 1
            first, writer = await asyncio.open_connection(sock=crowd.pop(0))
            lst.clients.append(writer)
            assert (await response(first)).endswith(b"hello")
    finally:
        for sock in crowd:
            sock.close()


async def test_a_half_sent_head_is_closed_after_the_header_timeout() -> None:
    async with listening(limit=10, header_timeout=0.3) as lst:
        complete = await lst.connect()
        complete[1].write(HELLO)
        assert (await response(complete[0])).endswith(b"hello")
        half = await lst.connect()
        half[1].write(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # no blank line: the head never ends
        silent = await lst.connect()
        assert await closed_by_server(half[0]) and await closed_by_server(silent[0])
        assert lst.rejected("header_timeout") == 2
        # A connection whose head was complete is not cut by that timer: it is served again.
        complete[1].write(HELLO)
        assert (await response(complete[0])).endswith(b"hello")
        # A head split across reads, ending within the timeout, is complete too.
        split = await lst.connect()
        for piece in (b"GET /hello HTTP/1.1\r\nHost: x\r", b"\n\r", b"\n"):
            split[1].write(piece)
            await split[1].drain()
        assert (await response(split[0])).endswith(b"hello")


@pytest.mark.parametrize("pipelined", [1, 50])
async def test_a_client_that_never_reads_its_answers_is_closed_after_the_write_timeout(pipelined: int) -> None:
    """A client pipelining requests it never reads must not hold its buffers and handle indefinitely."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        async with listening(limit=10, write_timeout=0.3) as lst:
            sock.connect(("127.0.0.1", lst.port))
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * pipelined)
            await lst.until_open(1)
            await until(lambda: lst.rejected("write_timeout") >= 1, "a write timeout counted", 10, every=0.01)
            await lst.until_open(0)  # its place (and handle) given back
            # A client that reads is served as ever. A small answer, which the socket's buffers take whole: a
            # big one to a reader in this same process would be rightly cut whenever it waits for a core.
            reader, writer = await lst.connect()
            writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await response(reader)).endswith(b"hello")
            assert lst.rejected("write_timeout") == 1
    finally:
        sock.close()


async def test_accept_failures_for_lack_of_handles_are_one_line_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    others: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: others.append(context))
    try:
        install_accept_error_handler(loop, RateLimitedLog(logging.getLogger("broadcaster.http.connections")))
        with caplog.at_level(logging.WARNING):
            for _ in range(500):  # what asyncio reports per failed accept, tracebacks and all
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(errno.EMFILE, "Too many open files")})
            loop.call_exception_handler({"message": "something else", "exception": RuntimeError("x")})
    finally:
        loop.set_exception_handler(previous)
    lines = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(lines) == 1 and "Too many open files" in lines[0].getMessage() and not lines[0].exc_info
    assert [c["message"] for c in others] == ["something else"]  # other loop errors go where they went
