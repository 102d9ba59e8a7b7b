"""Scripted WebTorrent-tracker clients (the protocol P2P Media Loader's browser client speaks), honest or
not, and the shipped tracker as its systemd unit runs it: for tests/test_tracker_hostile.py and
bench/tracker_attacks.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import shlex
import socket
import string
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from broadcaster.status.trackers import master_info_hashes
from tests.support.local_http import Served
from tests.support.waiting import until

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "tracker" / "hls-broadcaster-tracker.service"
SWARM = "hls-broadcaster-0123456789abcdef0123456789abcdef"  # as Settings.p2p_swarm makes them
MEET_TIMEOUT = 10.0


MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=1628000,AVERAGE-BANDWIDTH=1500000,RESOLUTION=640x360,FRAME-RATE=30.000,CODECS="avc1.64001e,mp4a.40.2"
0/playlist.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=281000,RESOLUTION=320x180,FRAME-RATE=30.000,CODECS="avc1.4d400d,mp4a.40.2"
1/playlist.m3u8
"""  # as the service renders Owncast's two variants
VARIANTS = master_info_hashes(SWARM, MASTER)  # what P2P Media Loader announces for each


class StandInService(Served):
    """What the tracker reads from the service on loopback: /config.json (the swarm) and the
    multivariant playlist (the variants); `master` and `p2p` may be changed while it runs."""

    def __init__(self, admit: Callable[[str | None], object | None] | None = None) -> None:
        """`admit`: a private stream's judgement of the playlist's `access=` (None: let in), e.g. the
        service's Gatekeeper.admit; None: a public stream."""
        super().__init__()
        self.master: str | None = MASTER
        self.p2p: bool = True
        self.admit = admit
        self.app.router.add_get("/config.json", self._config)
        self.app.router.add_get("/live/master.m3u8", self._master)

    async def _config(self, request: web.Request) -> web.Response:
        config: dict[str, Any] = {"stream": "live/master.m3u8"}
        if self.p2p:
            config["p2p"] = {"trackers": ["ws://127.0.0.1:1"], "swarm": SWARM, "stun": []}
        return web.json_response(config)

    async def _master(self, request: web.Request) -> web.Response:
        if self.master is None:
            raise web.HTTPNotFound()
        if self.admit is not None and self.admit(request.query.get("access")) is not None:
            raise web.HTTPForbidden()
        return web.Response(text=self.master, content_type="application/vnd.apple.mpegurl")


def unit_limits() -> tuple[dict[str, str], list[str]]:
    """The unit's Environment= and Node's flags in its ExecStart (before the script)."""
    env: dict[str, str] = {}
    flags: list[str] = []
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
        elif line.startswith("ExecStart="):
            argv = shlex.split(line.removeprefix("ExecStart="))
            flags = [a for a in argv[1:] if a.startswith("--")]
    assert env and flags, f"no Environment= or node flags in {UNIT}"
    return env, flags


def random_id() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=20))


def client_ip() -> str:
    """A client address of its own (TEST-NET-2), named in CF-Connecting-IP: the tracker believes it
    from a loopback peer, as from cloudflared."""
    return f"198.51.100.{random.randint(1, 254)}" if random.random() < 0.5 else f"2001:db8:{random.randint(0, 0xffff):x}::1"


def offer(sdp_size: int = 600) -> dict[str, Any]:
    return {"offer": {"type": "offer", "sdp": "v=0\r\n" + "a" * sdp_size}, "offer_id": random_id()}


@dataclass
class Peer:
    """One WebSocket to the tracker, as one viewer's page holds it."""

    ws: aiohttp.ClientWebSocketResponse
    peer_id: str = field(default_factory=random_id)
    received: list[dict[str, Any]] = field(default_factory=list)
    closed_with: tuple[int | None, str] | None = None
    _reader: asyncio.Task[None] | None = None
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        reason = ""
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.received.append(json.loads(msg.data))
                    self._news.set()
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    reason = str(msg.extra or "")
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            self.closed_with = (self.ws.close_code, reason)
            self._news.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def announce(self, infohash: str, *, offers: int = 0, event: str | None = "started", **extra: Any) -> None:
        message: dict[str, Any] = {"action": "announce", "info_hash": infohash, "peer_id": self.peer_id,
                                   "numwant": offers, "uploaded": 0, "downloaded": 0,
                                   "offers": [offer() for _ in range(offers)], **extra}
        if event:
            message["event"] = event
        await self.send(message)

    async def answer(self, infohash: str, to: dict[str, Any]) -> None:
        await self.send({"action": "announce", "info_hash": infohash, "peer_id": self.peer_id,
                         "to_peer_id": to["peer_id"], "offer_id": to["offer_id"],
                         "answer": {"type": "answer", "sdp": "v=0\r\nanswer"}})

    async def _until(self, done: Callable[[], bool], timeout: float) -> None:
        """Until `done()` (checked at each message and at the close), or `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not done():
                    self._news.clear()
                    await self._news.wait()

    async def next(self, match: Callable[[dict[str, Any]], bool], timeout: float = MEET_TIMEOUT,
                   start: int = 0) -> dict[str, Any] | None:
        """The first matching message received (from the `start`th on) within `timeout`; None if none came."""
        def found() -> dict[str, Any] | None:
            return next((m for m in self.received[start:] if match(m)), None)

        await self._until(lambda: found() is not None or self.closed_with is not None, timeout)
        return found()

    async def closed(self, timeout: float = MEET_TIMEOUT) -> tuple[int | None, str] | None:
        """How the tracker closed this connection, once it has (None if it stays open that long)."""
        await self._until(lambda: self.closed_with is not None, timeout)
        return self.closed_with

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


async def connect(http: aiohttp.ClientSession, url: str, ip: str) -> Peer:
    peer = Peer(await http.ws_connect(url, headers={"CF-Connecting-IP": ip}, max_msg_size=0))
    peer.start()
    return peer


@contextlib.asynccontextmanager
async def connected(url: str, ip: str | None = None) -> AsyncIterator[Peer]:
    async with aiohttp.ClientSession() as http:
        peer = await connect(http, url, ip or client_ip())
        try:
            yield peer
        finally:
            await peer.close()


async def serving(tracker: Any) -> None:
    """Until the tracker (a LocalTracker) has read the stream's variants from the service."""
    await until(lambda: any("tracker: serving swarm" in line for line in tracker.lines),
                "the tracker serving the swarm", MEET_TIMEOUT, every=0.02)


async def meet(url: str, infohash: str) -> bool:
    """Two new honest viewers: one's offer reaches the other, whose answer comes back."""
    async with connected(url) as a:
        await a.announce(infohash)
        if await a.next(lambda m: "interval" in m or "failure reason" in m) is None:
            return False
        if any("failure reason" in m for m in a.received):
            return False
        return await reached(a, url, infohash)


async def reached(viewer: Peer, url: str, infohash: str) -> bool:
    """A new honest viewer's offers reach `viewer` and its answer comes back: they meet."""
    async with connected(url) as newcomer:
        await newcomer.announce(infohash, offers=5)
        got = await viewer.next(lambda m: "offer" in m and m.get("peer_id") == newcomer.peer_id)
        if got is None:
            return False
        await viewer.answer(infohash, got)
        back = await newcomer.next(lambda m: "answer" in m and m.get("peer_id") == viewer.peer_id)
        return back is not None and back["offer_id"] == got["offer_id"]


class RawSocket:
    """A WebSocket client that never reads what it is sent (a small receive buffer, nothing read)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, ip: str) -> RawSocket:
        match = re.fullmatch(r"ws://([^:/]+):(\d+)/?", url)
        assert match, url
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (match[1], int(match[2])))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET / HTTP/1.1\r\nHost: {match[1]}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCF-Connecting-IP: {ip}\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send(self, *messages: dict[str, Any]) -> None:
        """All in one write: the tracker reads them at once (in one turn of its loop)."""
        frames = []
        for message in messages:
            data = json.dumps(message).encode()
            mask = os.urandom(4)
            n = len(data)
            head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else struct.pack("!BH", 0x80 | 126, n) if n < 65536
                                    else struct.pack("!BQ", 0x80 | 127, n))
            frames.append(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        self.writer.write(b"".join(frames))
        await self.writer.drain()

    async def dropped(self, timeout: float = MEET_TIMEOUT) -> bool:
        """Reads now, to its end: True if the tracker ended the connection within `timeout`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                try:
                    while await self.reader.read(65536):
                        pass
                except ConnectionError:
                    pass
                return True
        return False

    def close(self) -> None:
        self.writer.close()
