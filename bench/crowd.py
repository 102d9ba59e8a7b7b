"""Part of the rig (bench/rig.py): the whole service in a process of its own, timed from inside, and
a crowd of simulated viewers (raw asyncio, one Protocol a connection, cheap enough for 10,000 on 2
cores), shared by bench/viewers.py, bench/edge.py and bench/vm_cost.py. Not a bench itself.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import multiprocessing
import random
import resource
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

PATH = "/live/0/playlist.m3u8"
ANSWER_TIMEOUT = 10.0  # no answer this long is an error (a held request is answered within 3 s)
LAG_TICK = 0.05  # event-loop lag probe period
FD_SPARE = 200


def raise_nofile(needed: int, who: str) -> None:
    """Soft RLIMIT_NOFILE up to the hard limit; exit with one line if that is not enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"{who} needs {needed} open files but RLIMIT_NOFILE's hard limit is {hard}; "
                 f"raise it (ulimit -Hn, LimitNOFILE=) or use fewer --viewers / more --client-procs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))


async def lag_probe(samples: list[tuple[float, float]]) -> None:
    """How late a LAG_TICK timer fires: the event loop's queueing delay."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(LAG_TICK)
        now = time.monotonic()
        samples.append((now, now - before - LAG_TICK))


async def until_told(conn: Connection) -> None:
    await asyncio.to_thread(conn.recv)


def time_gc(pauses: list[tuple[float, int, float]]) -> None:
    """Note every garbage collection: (when, generation, seconds). A full collection stops the loop."""
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((time.monotonic(), info["generation"], time.perf_counter() - began[0]))

    gc.callbacks.append(callback)


# -- the service in a process of its own ---------------------------------------------------------


def serve_ours(env: dict[str, str], viewers: int, conn: Connection) -> None:
    """Process target: the whole Service; on_listed notes when each sequence is listed."""
    raise_nofile(viewers + FD_SPARE, "the service")
    from broadcaster.cli import setup_logging
    from broadcaster.service import Service, settle_heap
    from broadcaster.settings import load_settings
    from broadcaster.source.owncast import SourceSegment

    settings = load_settings(environ=env)
    setup_logging("warning")
    logged: list[tuple[float, str]] = []  # (when, "LEVEL logger: message template"), shown in the report

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append((time.monotonic(), f"{record.levelname} {record.name}: {record.msg}"))

    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(logging.ERROR)
    root.addHandler(Keep(logging.WARNING))
    listed: dict[int, tuple[float, str]] = {}

    def on_listed(variant: int, sequence: int, segment: SourceSegment, *_: object) -> None:
        if variant == 0:
            listed.setdefault(sequence, (time.monotonic(), segment.name))

    async def main() -> None:
        service = Service(settings, on_listed=on_listed)
        await service.start()
        settle_heap()  # as broadcaster.service.run() does
        lag: list[tuple[float, float]] = []
        pauses: list[tuple[float, int, float]] = []
        time_gc(pauses)
        probe = asyncio.create_task(lag_probe(lag))
        conn.send((service.url, len(gc.get_objects())))
        try:
            await until_told(conn)
        finally:
            probe.cancel()
            await service.stop()
        conn.send((listed, lag, logged, pauses))

    asyncio.run(main())


# -- the viewers ---------------------------------------------------------------------------------

PLAIN, BLOCKING = 0, 1
_MSN = b"#EXT-X-MEDIA-SEQUENCE:"
_SKIPPED = b"#EXT-X-SKIP:SKIPPED-SEGMENTS="


def last_sequence(body: bytes) -> int:
    """The last media sequence number a (full or delta) media playlist lists."""
    i = body.find(_MSN)
    last = int(body[i + len(_MSN):body.find(b"\n", i)]) + body.count(b"#EXTINF") - 1
    j = body.find(_SKIPPED)
    if j >= 0:
        end = j + len(_SKIPPED)
        while end < len(body) and body[end:end + 1].isdigit():
            end += 1
        last += int(body[j + len(_SKIPPED):end])
    return last


def _header(head: bytes, name: bytes) -> bytes | None:
    """A header's value from a lower-cased response head ending in CRLF CRLF."""
    i = head.find(b"\r\n" + name + b":")
    if i < 0:
        return None
    start = i + len(name) + 3
    return head[start:head.find(b"\r\n", start)].strip()


@dataclass
class Log:
    """Every answer a client process got (parallel arrays, cheap to pickle)."""

    kind: array[int] = field(default_factory=lambda: array("b"))
    asked: array[int] = field(default_factory=lambda: array("q"))
    sent: array[float] = field(default_factory=lambda: array("d"))
    recv: array[float] = field(default_factory=lambda: array("d"))  # nan: no answer by the end
    tick: array[float] = field(default_factory=lambda: array("d"))  # baseline's X-Tick, else nan
    status: array[int] = field(default_factory=lambda: array("h"))  # 0: no answer by the end
    errors: list[tuple[float, str]] = field(default_factory=list)
    lag: list[tuple[float, float]] = field(default_factory=list)
    connected: int = 0

    def add(self, kind: int, asked: int, sent: float, recv: float, tick: float, status: int) -> None:
        self.status.append(status)
        self.kind.append(kind)
        self.asked.append(asked)
        self.sent.append(sent)
        self.recv.append(recv)
        self.tick.append(tick)


class Viewer(asyncio.Protocol):
    """One keep-alive connection, one request in flight, minimal HTTP/1.1."""

    def __init__(self, log: Log, host: bytes, blocking: bool, interval: float, stopping: Callable[[], bool],
                 opened: Callable[[], None], skip: bool) -> None:
        self.log = log
        self.opened = opened
        self.blocking = blocking
        self.interval = interval
        self.stopping = stopping
        self.plain = b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nAccept: */*\r\n\r\n"
        query = b"?_HLS_msn=%d" + (b"&_HLS_skip=YES" if skip else b"")
        self.block = b"GET " + PATH.encode() + query + b" HTTP/1.1\r\nHost: " + host + b"\r\nAccept: */*\r\n\r\n"
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1  # bytes of the whole answer once the head is in
        self.head_end = 0
        self.sent_at = math.nan  # nan: nothing in flight
        self.kind = PLAIN
        self.asked = -1
        self.last = -1
        self.flagged = False
        self.poll_start = 0.0
        self.polls = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.log.connected += 1
        self.opened()
        self.poll_start = time.monotonic() + random.random() * self.interval
        self.get_plain()

    def get_plain(self) -> None:
        self.timer = None
        self._send(self.plain, PLAIN, -1)

    def _send(self, data: bytes, kind: int, asked: int) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.kind, self.asked, self.flagged = kind, asked, False
        self.sent_at = time.monotonic()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_end = end + 4
            length = _header(bytes(self.buf[:self.head_end]).lower(), b"content-length")
            self.need = self.head_end + int(length or 0)
        if len(self.buf) < self.need:
            return
        now = time.monotonic()
        head = bytes(self.buf[:self.head_end]).lower()
        body = bytes(self.buf[self.head_end:self.need])
        del self.buf[:self.need]
        self.need = -1
        self._answered(head, body, now)

    def _answered(self, head: bytes, body: bytes, now: float) -> None:
        status = int(head[9:12])
        tick_text = _header(head, b"x-tick")
        tick = float(tick_text) if tick_text else math.nan
        self.log.add(self.kind, self.asked, self.sent_at, now, tick, status)
        self.sent_at = math.nan
        if status != 200:
            self.log.errors.append((now, f"HTTP {status} to a {'blocking' if self.kind else 'plain'} request"))
        elif self.blocking:
            self.last = max(self.last, last_sequence(body))
        if self.blocking and self.last >= 0:
            self._send(self.block % (self.last + 1), BLOCKING, self.last + 1)
        else:  # polling, or a blocking viewer that has not had a playlist yet
            # The next slot of its fixed schedule still ahead: a late answer skips slots, like a player.
            self.polls = max(self.polls + 1, math.ceil((now - self.poll_start) / self.interval))
            loop = asyncio.get_running_loop()
            # loop.time() is time.monotonic()
            self.timer = loop.call_at(self.poll_start + self.polls * self.interval, self.get_plain)

    def check(self, now: float) -> None:
        if not self.flagged and not math.isnan(self.sent_at) and now - self.sent_at > ANSWER_TIMEOUT:
            self.flagged = True
            self.log.errors.append((now, f"no answer within {ANSWER_TIMEOUT:.0f} s"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.stopping():
            self.log.errors.append((time.monotonic(), f"connection lost ({exc!r})"))

    def finish(self) -> None:
        if not math.isnan(self.sent_at):  # still in flight: a held request at the end
            self.log.add(self.kind, self.asked, self.sent_at, math.nan, math.nan, 0)
        if self.transport is not None:
            self.transport.close()


def run_viewers(url: str, blocking: int, polling: int, interval: float, ramp: float, skip: bool, seed: int,
                opened: Any, stop: MpEvent, conn: Connection) -> None:
    """Process target: `blocking` + `polling` viewers against url until `stop`; sends its Log.
    `opened` is a shared counter of connections made."""
    raise_nofile(blocking + polling + FD_SPARE, "a client process")
    random.seed(seed)

    def count() -> None:
        with opened.get_lock():
            opened.value += 1

    asyncio.run(_viewers(url, blocking, polling, interval, ramp, skip, count, stop, conn))


async def _viewers(url: str, blocking: int, polling: int, interval: float, ramp: float, skip: bool,
                   opened: Callable[[], None], stop: MpEvent, conn: Connection) -> None:
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    log = Log()
    stopping = False
    viewers: list[Viewer] = []
    kinds = [True] * blocking + [False] * polling
    random.shuffle(kinds)

    async def connect(v: Viewer) -> None:
        for attempt in range(3):
            try:
                async with asyncio.timeout(30):
                    await loop.create_connection(lambda: v, host, int(port))
                return
            except (OSError, TimeoutError) as err:
                log.errors.append((time.monotonic(), f"connect failed ({err!r})"))
                await asyncio.sleep(1 + attempt)

    probe = asyncio.create_task(lag_probe(log.lag))
    connecting: list[asyncio.Task[None]] = []
    began = time.monotonic()
    for i, is_blocking in enumerate(kinds):
        await asyncio.sleep(max(0.0, began + i / ramp - time.monotonic()))
        v = Viewer(log, host.encode(), is_blocking, interval, lambda: stopping, opened, skip)
        viewers.append(v)
        connecting.append(asyncio.create_task(connect(v)))
    while not stop.is_set():
        await asyncio.sleep(0.25)
        now = time.monotonic()
        for v in viewers:
            v.check(now)
    stopping = True
    probe.cancel()
    for t in connecting:
        t.cancel()
    for v in viewers:
        v.finish()
    await asyncio.sleep(0.2)
    conn.send(log)


# -- a server process ----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    proc: multiprocessing.process.BaseProcess
    conn: Connection
    idle_rss_kb: int = 0
    listed: dict[int, tuple[float, str]] = field(default_factory=dict)
    lag: list[tuple[float, float]] = field(default_factory=list)
    logged: list[tuple[float, str]] = field(default_factory=list)
    gc_objects: int = 0  # objects the garbage collector tracks, at start
    gc_pauses: list[tuple[float, int, float]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.is_alive():
            self.conn.send("stop")
            if self.conn.poll(30):
                self.listed, self.lag, self.logged, self.gc_pauses = self.conn.recv()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


async def start_server(name: str, ctx: Any, target: Callable[..., None], *args: object) -> Server:
    recv, send = ctx.Pipe()
    proc = ctx.Process(target=target, name=name, args=(*args, send), daemon=True)
    proc.start()
    if not await asyncio.to_thread(recv.poll, 60):
        proc.terminate()
        raise RuntimeError(f"the {name} server did not start")
    url, objects = recv.recv()
    return Server(name, url, proc, recv, gc_objects=objects)
