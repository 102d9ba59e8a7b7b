"""Client connections held within the file-handle budget (ConnectionGate, the listener's protocol factory):
below the cap a connection gets aiohttp's handler, with deadlines for its first request head and for paused
writing (aiohttp has neither); at the cap an idle one is closed to make room (as nginx does), else a fixed
503. A plain playlist GET is answered here when aiohttp holds nothing of the connection (quick.py)."""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web

from ..edge import EDGE_HEADERS, NO_STORE
from ..files import TEMPORARY_ERRNOS
from ..lograte import RateLimitedLog
from ..metrics import ConnectionMetrics
from . import quick
from .answers import raw_head
from .quick import QuickAnswers

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0  # seconds from accept to a complete first request head (HEADER_TIMEOUT setting)
WRITE_TIMEOUT = 30.0  # seconds a connection's writing may stay paused (WRITE_TIMEOUT setting)
# Idle keep-alive connections' life: longer than any player's reload interval (nginx's default).
KEEPALIVE_TIMEOUT = 75.0
RETRY_AFTER = 2  # seconds, for the 503 past the connection cap
LISTEN_QUEUE = 1024  # connections the kernel holds until they are accepted (capped by net.core.somaxconn)
LINGER = 1.0  # seconds a refused connection may wait for its request to be read before it is closed
LINGER_MAX = 16  # refused connections lingering at once
OVERDRAFT = 16  # connections past the cap for newcomers whose request head is there (the budget's margin)
_EVICT_SCAN = 64  # connections looked at for an idle one before answering 503
_TIMED_OUT = {"header_timeout": "sent no complete request head",
              "write_timeout": "accepted nothing of its answers"}
_HEAD_END = (b"\r\n\r\n", b"\n\n")  # llhttp takes bare LF line ends too
# Bytes of unread data looked at for a request head's end; more counts as a request (not a trickle).
_PEEK = 8192

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


@dataclass(frozen=True, slots=True)
class GateOptions:
    """How a listener's connections are gated."""

    limit: int  # connections handed to aiohttp at once
    header_timeout: float = HEADER_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    retry_after: int = RETRY_AFTER
    metrics: ConnectionMetrics | None = None
    kind: str = "connections"  # its name in the connection metrics
    quick: QuickAnswers | None = None  # plain playlist GETs answered before aiohttp parses them (quick.py)


class ConnectionGate:
    """The protocol factory for a listener: at most `options.limit` connections get `factory`'s protocol."""

    def __init__(self, factory: ProtocolFactory, options: GateOptions) -> None:
        if options.limit < 1 or not options.header_timeout > 0 or not options.write_timeout > 0:
            raise ValueError("limit >= 1, header_timeout and write_timeout > 0")
        self._factory = factory
        self.options = options
        self.quick = options.quick  # asked for every request: at hand
        busy = b"too many connections, try again shortly\n"
        headers = {hdrs.CONTENT_TYPE: "text/plain; charset=utf-8", hdrs.RETRY_AFTER: str(options.retry_after),
                   hdrs.CACHE_CONTROL: NO_STORE, **EDGE_HEADERS, hdrs.CONNECTION: "close"}  # as every answer
        self._busy = raw_head("503 Service Unavailable", headers, len(busy)) + b"\r\n" + busy
        self._lingering = 0  # refused connections waiting to close cleanly
        # Admitted connections, oldest first (the budget's margin holds those connecting or closing).
        self._open: dict[_Counted, None] = {}
        self._fresh: dict[_Counted, None] = {}  # admitted, no complete request head read yet, oldest first
        self._peek = bytearray(_PEEK)  # one buffer for every MSG_PEEK (one loop, one at a time)
        if options.metrics is not None:
            options.metrics.watch(options.kind, lambda: len(self._open), options.limit)

    @property
    def open(self) -> int:
        return len(self._open)

    def __call__(self) -> asyncio.BaseProtocol:
        # Decided in _Counted.connection_made: asyncio creates a batch of protocols before connecting any.
        return _Counted(self, self._factory())

    def _admit(self, conn: _Counted) -> bool:
        """Whether `conn`, just connected, may stay (then counted): below the cap, once an idle one made
        room, or a little past the cap when its request head is already there."""
        limit = self.options.limit
        if not (len(self._open) < limit or self._evict_idle()
                or (len(self._open) < limit + OVERDRAFT and conn.has_request())):
            return False
        self._open[conn] = None
        self._fresh[conn] = None
        return True

    def _evict_idle(self) -> bool:
        """Closes the oldest connection that only holds a handle; False if none. What was looked at goes to
        the back, so held requests do not gather at the front."""
        for group, idle in ((self._fresh, _Counted.fresh), (self._open, _Counted.idle)):
            for conn in list(itertools.islice(group, _EVICT_SCAN)):
                if idle(conn) and not conn.has_request():
                    self._count("idle_evicted")
                    conn.drop()
                    return True
                del group[conn]
                group[conn] = None
        return False

    def _count(self, reason: str) -> None:
        if self.options.metrics is not None:
            self.options.metrics.rejected(reason)

    def _closed(self, conn: _Counted) -> None:
        self._open.pop(conn, None)
        self._fresh.pop(conn, None)

    def _timed_out(self, conn: _Counted, reason: str) -> None:
        self._count(reason)
        log.debug("closed a connection that %s in %.0f s", _TIMED_OUT[reason], getattr(self.options, reason))
        conn.drop()


class _Counted(asyncio.Protocol):
    """aiohttp's request handler, counted, with a deadline for the first request head."""

    def __init__(self, gate: ConnectionGate, inner: asyncio.BaseProtocol) -> None:
        self._gate = gate
        self._inner: Any = inner  # an asyncio.Protocol in practice (aiohttp's RequestHandler)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None  # armed while writing is paused
        self._tail = b""  # the end of what arrived, for a head end split across reads
        self._made = False  # the transport told us, and aiohttp's handler, of the connection
        self._dropped = False
        self._lingering = False  # refused, waiting for its request to be read before closing
        # Everything aiohttp was given ended a bodiless head: its parser holds nothing (quick.py).
        self._whole = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._gate._admit(self):  # past the cap: the fixed 503, never seen by aiohttp
            self._refuse(transport)
            return
        self._made = True
        self._timer = asyncio.get_running_loop().call_later(
            self._gate.options.header_timeout, self._gate._timed_out, self, "header_timeout")
        self._inner.connection_made(transport)

    def _refuse(self, transport: asyncio.Transport) -> None:
        """Writes the 503 and closes. A close with the request unread sends a reset that may beat the 503, so
        a FIN follows and the connection lingers until the request is read (LINGER at most)."""
        self._dropped = True
        self._gate._count("connections")
        transport.write(self._gate._busy)
        waiting = _peek(transport.get_extra_info("socket"), self._gate._peek)  # its request, unread
        if self._gate._lingering >= LINGER_MAX or not transport.can_write_eof() or not waiting:
            transport.close()  # after the write
            return
        self._gate._lingering += 1
        self._lingering = True
        transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            if self._transport is not None:
                self._transport.close()  # what it sent is read: now a close is a clean one
            return
        if not self._made:
            return
        if self._timer is not None:
            seen = self._tail + data
            if any(end in seen for end in _HEAD_END):  # its head is whole: no longer fresh
                self._timer = _cancelled(self._timer)
                self._tail = b""
                self._gate._fresh.pop(self, None)
            else:
                self._tail = seen[-3:]
        if self._whole and self._gate.quick is not None:
            if self._answer_quickly(data, self._gate.quick):
                return
            self._whole = quick.whole_heads(data)
        self._inner.data_received(data)

    def _answer_quickly(self, data: bytes, answers: QuickAnswers) -> bool:
        """Answers a plain playlist GET if aiohttp holds nothing of the connection, its writing not paused."""
        transport = self._transport
        if (self._write_timer is not None or transport is None or transport.is_closing()
                or not quick.idle(self._inner)):
            return False
        answer = answers.answer(data, self.peer)
        if answer is None:
            return False
        transport.write(answer)
        quick.kept_alive(self._inner, asyncio.get_running_loop().time())
        return True

    def peer(self) -> str:
        """The peer's address as aiohttp's request.remote gives it."""
        peername = self._transport.get_extra_info("peername") if self._transport is not None else None
        return str(peername[0]) if isinstance(peername, (list, tuple)) else str(peername or "")

    def eof_received(self) -> bool | None:
        if not self._made:
            return None  # the transport closes
        return self._inner.eof_received()  # type: ignore[no-any-return]

    def pause_writing(self) -> None:
        if self._write_timer is None and not self._dropped:
            self._write_timer = asyncio.get_running_loop().call_later(
                self._gate.options.write_timeout, self._gate._timed_out, self, "write_timeout")
        if self._made:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._write_timer = _cancelled(self._write_timer)
        if self._made:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer = self._write_timer = _cancelled(self._timer, self._write_timer)
        self._gate._closed(self)
        if self._lingering:
            self._lingering = False
            self._gate._lingering -= 1
        if self._made:
            self._made = False
            self._inner.connection_lost(exc)

    def idle(self) -> bool:
        """No request in progress: no head yet, or aiohttp waiting for the next (RequestHandler._waiter)."""
        waiter = getattr(self._inner, "_waiter", None)
        return self.fresh() or (not self._dropped and isinstance(waiter, asyncio.Future)
                                and not waiter.done())

    def fresh(self) -> bool:
        """No complete request head read yet."""
        return not self._dropped and self._timer is not None

    def has_request(self) -> bool:
        """A complete request head (or _PEEK bytes) waits unread in the socket: not closed to make room."""
        buf = self._gate._peek
        n = _peek(self._transport.get_extra_info("socket") if self._transport is not None else None, buf)
        if n == 0:
            return False
        if n == _PEEK:
            return True
        seam = self._tail + bytes(buf[:min(n, 3)])  # a head end split between what was read and what was not
        return any(end in seam for end in _HEAD_END) or any(buf.find(end, 0, n) >= 0 for end in _HEAD_END)

    def drop(self) -> None:
        """Closes the connection now; connection_lost follows and frees its place."""
        self._dropped = True
        self._timer = self._write_timer = _cancelled(self._timer, self._write_timer)
        self._gate._closed(self)  # at once: the handle is being released
        if self._transport is not None:
            self._transport.abort()  # nothing of ours is waiting to be sent


def _cancelled(*timers: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancels `timers`; None, for what held them."""
    for timer in timers:
        if timer is not None:
            timer.cancel()
    return None


def _peek(transport_socket: Any, buf: bytearray) -> int:
    """Copies what is waiting unread in a connection's socket into `buf`, leaving it there; 0 if nothing."""
    try:
        sock = socket.socket(transport_socket.family, transport_socket.type, transport_socket.proto,
                             transport_socket.fileno())
    except (OSError, AttributeError, ValueError):
        return 0
    try:
        return sock.recv_into(buf, len(buf), socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # nothing there (EAGAIN), or reset
        return 0
    finally:
        sock.detach()


class GatedSite(web.BaseSite):
    """A TCP listener of `runner` whose connections go through a ConnectionGate."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, options: GateOptions, *,
                 backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        assert runner.server is not None  # BaseSite checked it
        self._host, self._port = host, port
        self.gate = ConnectionGate(runner.server, options)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()  # registers with the runner, which stops it on cleanup
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.gate, self._host, self._port, backlog=self._backlog)
        # asyncio's `backlog` is also how many it accepts at once (kept small): deepen the kernel's queue.
        for sock in self._server.sockets:
            with sock.dup() as same:
                same.listen(LISTEN_QUEUE)


_RESOURCE_ERRNOS = TEMPORARY_ERRNOS | {errno.ENOBUFS}  # the kernel's socket buffers, too


def install_accept_error_handler(loop: asyncio.AbstractEventLoop, ratelog: RateLimitedLog | None = None) -> None:
    """asyncio's traceback per failed accept when handles run out: one WARNING per 30 s with a count."""
    previous = loop.get_exception_handler()
    limited = ratelog or RateLimitedLog(log)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS and "accept" in str(context.get("message")):
            limited.warning("accept", "cannot accept connections: %s (the open-file limit is reached; raise "
                            "LimitNOFILE, or see which process holds the handles)", exc.strerror or exc)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
