"""The steering manifest players reload (GET <folder>/steering.json): one rendering per change and
place, its RELOAD-URI absolute where it was asked."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from ..edge import EDGE_HEADERS, edge_headers
from ..playlist import hls
from ..playlist.steering import reloaded_from
from ..steering.masters import MAX_HOSTS
from ..vm.ranges import none_match
from .answers import raw_head
from .clients import Here, Proxies, request_here

STEERING_QUERY_PATHWAY = "_HLS_pathway"
# The manifest as rendered (relative RELOAD-URI), for a query naming _HLS_pathway again (answer_at).
_AS_RENDERED = ("", False)


class SteeringSource(Protocol):
    def manifest(self) -> bytes:
        """The steering manifest as it is now."""

    def ttl(self) -> int:
        """Its TTL (seconds)."""


@dataclass(frozen=True, slots=True)
class SteeringAnswer:
    """One place's steering manifest with its headers, and as bytes (steering_quick.py), built once."""

    source: bytes  # the source's manifest it was made from (compared by identity)
    body: bytes
    etag: str
    headers: CIMultiDictProxy[str]
    unchanged: CIMultiDictProxy[str]  # a 304's: the same without Content-Type
    head: bytes  # the 200's status line and headers, Content-Length last
    unchanged_head: bytes  # the 304's (no Content-Length, as aiohttp writes it)

    @classmethod
    def of(cls, source: bytes, body: bytes, ttl: int, shared: bool) -> SteeringAnswer:
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        unchanged = CIMultiDict({**EDGE_HEADERS, hdrs.ETAG: etag, hdrs.CACHE_CONTROL:
                                 hls.steering_cache_control(ttl) if shared else hls.UNSHARED_CACHE_CONTROL})
        headers = CIMultiDict(unchanged)
        headers[hdrs.CONTENT_TYPE] = hls.STEERING_CONTENT_TYPE
        return cls(source, body, etag, CIMultiDictProxy(headers), CIMultiDictProxy(unchanged),
                   raw_head("200 OK", headers, len(body)), raw_head("304 Not Modified", unchanged, None))


class SteeringRoute:
    """GET <folder>/steering.json (its query changes nothing), its RELOAD-URI absolute where it was asked
    (reloaded_from says why), at most MAX_HOSTS places; without a source (PATHWAYS=bucket), 410 so that a
    player holding an older multivariant playlist stops asking. Shaka 4.16 without a RELOAD-URI adds its
    query again every reload: a query naming _HLS_pathway twice gets the relative one (Shaka 5 never does)."""

    def __init__(self, source: SteeringSource | None, count: Callable[[str], None] = lambda pathway: None,
                 proxies: Proxies = Proxies()) -> None:
        self._source = source
        self._count = count  # bounds the labels itself (steering/metrics.py's PathwayCounts)
        self._proxies = proxies  # who may say the scheme the viewer used (clients.py)
        self._cached: dict[tuple[str, bool], SteeringAnswer] = {}  # (place, shareable) -> the answer there
        self._places: set[str] = set()

    async def manifest(self, request: web.Request) -> web.Response:
        source = self._source
        if source is None:
            return web.Response(status=hls.STEERING_GONE_STATUS, text="no content steering here\n",
                                headers=edge_headers({hdrs.CACHE_CONTROL: "public, max-age=3600"}))
        said = request.query.getall(STEERING_QUERY_PATHWAY, ())
        answer = self.answer_at(request_here(request, self._proxies), said[0] if said else "", len(said) > 1)
        assert answer is not None  # a source answers
        if none_match(request, answer.etag):
            return web.Response(status=304, headers=answer.unchanged)
        return web.Response(body=answer.body, headers=answer.headers)

    def answer_at(self, here: Here | None, pathway: str, again: bool = False) -> SteeringAnswer | None:
        """The answer at `here` to a player on `pathway` (`again`: named twice), counted; None: no source."""
        source = self._source
        if source is None:
            return None
        self._count(pathway or "none")
        body = source.manifest()  # a new one whenever the priority or the TTL changes
        key = ("", True) if here is None else (here.base, here.shared or not here.base)  # (place, shareable)
        if again and not absolute(here):
            key = _AS_RENDERED
        cached = self._cached.get(key)
        if cached is None or cached.source is not body:
            if key[0] and key[0] not in self._places and len(self._places) >= MAX_HOSTS:
                key = _AS_RENDERED if again else ("", True)  # past the bound: no absolute RELOAD-URI
                cached = self._cached.get(key)
            if cached is None or cached.source is not body:
                self._places.add(key[0])
                served = body if key == _AS_RENDERED else reloaded_from(body, key[0] or None)
                cached = self._cached[key] = SteeringAnswer.of(body, served, source.ttl(), key[1])
        return cached


def absolute(here: Here | None) -> bool:
    """Whether an answer `here` names an absolute RELOAD-URI (the scheme is known)."""
    return here is not None and not here.base.startswith("//") and bool(here.base)
