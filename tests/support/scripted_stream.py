"""A scripted live stream served to each client on a clock of its own, for the player tests.

A client is a path of its own, /c/<client>/live/ (master.m3u8, <n>/playlist.m3u8, <n>/<name>). Its
Stream, a subclass per rig, answers each request on the client's clock, which starts at its first request
`join` seconds into the script; every answer is recorded (Asked) and carries CORS (some pages come from
another origin, as a site embedding a player)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from aiohttp import web

from broadcaster.playlist.hls import MEDIA_PLAYLIST_NAME
from tests.support.local_http import Served

CORS = {"Access-Control-Allow-Origin": "*"}
SHOWN = web.ResponseKey("shown", float)  # a media playlist answer's: from when its version was due


class Clock:
    """Seconds into the script on one client's clock: `join` at its first reading, then `rate` seconds per
    second of the wall's (below 1: each version shown longer)."""

    def __init__(self, join: float = 0.0, rate: float = 1.0) -> None:
        self.join = join
        self.rate = rate
        self.started: float | None = None

    def __call__(self) -> float:
        if self.started is None:
            self.started = time.monotonic()
        return self.join + (time.monotonic() - self.started) * self.rate


class Timed(Protocol):
    @property
    def at(self) -> float: ...


T = TypeVar("T", bound=Timed)


def due(versions: Sequence[T], now: float) -> T:
    """The version of the script shown at `now`: the newest from then or before (the first, before any)."""
    return ([v for v in versions if v.at <= now] or versions[:1])[-1]


@dataclass(frozen=True)
class Asked:
    at: float  # on the client's clock
    path: str  # below /c/<client>/, with its query
    status: int
    shown: float | None = None  # a media playlist's: the moment its version was due from (SHOWN)

    @property
    def variant(self) -> int:
        """The variant of a media playlist or segment; -1 for the multivariant playlist."""
        pieces = self.path.split("?")[0].split("/")
        return int(pieces[-2]) if pieces[-2].isdigit() else -1

    @property
    def name(self) -> str:
        return self.path.split("?")[0].rsplit("/", 1)[-1]


class Stream:
    """One client's clock and what it asked; a rig's subclass answers its playlists and segments
    (None: 404)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.asked: list[Asked] = []

    async def master(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    async def media(self, request: web.Request, variant: int) -> web.StreamResponse:
        raise NotImplementedError

    def segment(self, variant: int, name: str) -> bytes | None:
        raise NotImplementedError


def playlist(text: str) -> web.Response:
    return web.Response(text=text, content_type="application/vnd.apple.mpegurl",
                        headers={"Cache-Control": "no-cache"})


class StreamServer(Served):
    """The clients' streams (`clients`, by name) served under /c/<client>/live/, beside the routes of
    `app` (the players' pages, when they come from the same origin); a handler is cancelled when its
    client hangs up, as the service runs them (a held blocking reload)."""

    def __init__(self, app: web.Application | None = None) -> None:
        super().__init__(app, cancel_handlers=True)
        self.clients: dict[str, Stream] = {}
        r = self.app.router
        r.add_get("/c/{client}/live/master.m3u8", self._master)
        r.add_get(r"/c/{client}/live/{n:\d+}/" + MEDIA_PLAYLIST_NAME, self._media)
        r.add_get(r"/c/{client}/live/{n:\d+}/{name}", self._segment)
        self.app.on_response_prepare.append(self._cors)

    def add(self, name: str, stream: Stream) -> str:
        """Serve `stream` to client `name`; the URL of its multivariant playlist."""
        self.clients[name] = stream
        return f"{self.url}/c/{name}/live/master.m3u8"

    @staticmethod
    async def _cors(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(CORS)

    async def _master(self, request: web.Request) -> web.StreamResponse:
        return await self._recorded(request, lambda stream: stream.master(request))

    async def _media(self, request: web.Request) -> web.StreamResponse:
        variant = int(request.match_info["n"])
        return await self._recorded(request, lambda stream: stream.media(request, variant))

    async def _segment(self, request: web.Request) -> web.StreamResponse:
        async def answer(stream: Stream) -> web.StreamResponse:
            body = stream.segment(int(request.match_info["n"]), request.match_info["name"])
            if body is None:
                raise web.HTTPNotFound()
            return web.Response(body=body, content_type="video/mp2t")

        return await self._recorded(request, answer)

    async def _recorded(self, request: web.Request,
                        answer: Callable[[Stream], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        stream = self.clients.get(request.match_info["client"])
        if stream is None:
            raise web.HTTPNotFound()
        at, path = round(stream.clock(), 3), request.path_qs.split("/", 3)[-1]
        try:
            response = await answer(stream)
        except web.HTTPException as refused:
            stream.asked.append(Asked(at, path, refused.status))
            raise
        stream.asked.append(Asked(at, path, response.status, response.get(SHOWN)))
        return response
