"""The steering manifest players reload (GET <folder>/steering.json): one rendering per change and
place, its RELOAD-URI absolute where it was asked."""

from __future__ import annotations

import enum
import hashlib
import re
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
from .answers import dated, raw_head
from .clients import Here, Proxies, here_at, request_here
from .quick import plain_fields

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
    """One place's steering manifest with its headers, and as bytes (QuickSteering), built once."""

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


# What yarl reads as it is sent: a query of these bytes alone (checked by bytes.translate).
_QUERY_BYTES = b"-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~=&"
# The first _HLS_pathway item and its value (yarl's query.get: a bare name has the empty value).
_PATHWAY = re.compile(rb"(?:^|&)" + STEERING_QUERY_PATHWAY.encode() + rb"(?:=([^&]*))?(?:&|$)")
_PATHWAY_FIRST = STEERING_QUERY_PATHWAY.encode() + b"="  # as hls.js sends it: the query's first item
_PATHWAY_NAME = STEERING_QUERY_PATHWAY.encode()
# Fields aiohttp 3.14 refuses twice (SINGLETON_HEADERS not left to it already); Host it requires once.
_SINGLETONS = re.compile(rb"(?:^|\n)(host|user-agent|content-type|content-location|content-range|etag"
                         rb"|max-forwards|server):")
# A field's value as aiohttp reads it (without the whitespace around it), case kept.
_HOST = re.compile(rb"(?:^|\n)host:[\t ]*([!-~]*)[\t ]*\r", re.IGNORECASE)
_IF_NONE_MATCH = re.compile(rb"(?:^|\n)if-none-match:[\t ]*([!-~]*)[\t ]*\r", re.IGNORECASE)
_TAG = re.compile(rb'(?:W/)?"([!#-~]+)"')  # one entity tag, strong or weak, as aiohttp reads one
_PROXIED = re.compile(rb"(?:^|\n)(?:cf-connecting-ip|cf-visitor|x-forwarded-for|x-forwarded-proto|forwarded):")
_OWN_SCHEME = "http"
_VERSION = b" HTTP/1.1\r\n"  # the request line's end, before the fields


class _Seen(enum.Enum):
    NOT = 0  # a head not read yet
    BY_PEER = 1  # a head whose answer depends on the peer too: decided per (head, peer)


@dataclass(frozen=True, slots=True)
class _Decided:
    """What a request's head (its fields) says for the answer: where it asked, and its one entity tag."""
    here: Here | None
    tag: str | None  # If-None-Match's (without quotes or W/)
    absolute: bool  # an absolute RELOAD-URI named here (steering_route.absolute)


Decision = _Decided | None | _Seen  # None: aiohttp's to answer


class QuickSteering:
    """The steering manifest at `/<folder>/steering.json` from the raw request (quick.Whole), before aiohttp
    parses it: only when the Host, a trusted proxy's scheme, `_HLS_pathway` and If-None-Match read from the raw
    head exactly as aiohttp reads them, by SteeringRoute.answer_at (one cache and count for both). Public
    streams only; the connection's own scheme is `http` (a TLS front is a proxy that says the viewer's). What
    a head's fields say is read once and kept by their bytes (and peer, for a proxy's word), at most KEPT."""

    KEPT = 256

    def __init__(self, route: SteeringRoute, proxies: Proxies, folder: str) -> None:
        self._route = route
        self._proxies = proxies  # who may say the scheme the viewer used (clients.py)
        self._folder = f"/{folder}"
        self._decided: dict[bytes | tuple[bytes, str], Decision] = {}

    def __call__(self, data: bytes, query: bytes, peer: Callable[[], str]) -> bytes | None:
        if query.translate(None, _QUERY_BYTES):
            return None
        end = data.find(b" ", 4)
        if not data.startswith(_VERSION, end):
            return None
        fields = data[end + len(_VERSION):]  # with the blank line that ends them
        decided = self._decided.get(fields, _Seen.NOT)
        if decided is _Seen.BY_PEER:
            decided = self._decided.get((fields, peer()), _Seen.NOT)
        if decided is _Seen.NOT:
            decided = self._decide(data, fields, peer)
        if not isinstance(decided, _Decided):
            return None
        if not decided.absolute and query.count(_PATHWAY_NAME) > 1:
            return None  # aiohttp's, which reads the names in the query exactly (SteeringRoute: Shaka 4.16)
        answer = self._route.answer_at(decided.here, _pathway(query))
        if answer is None:
            return None
        if decided.tag is not None and decided.tag == answer.etag[1:-1]:  # the weak comparison (13.1.2)
            return dated(answer.unchanged_head, b"")
        return dated(answer.head, answer.body)

    def _decide(self, data: bytes, fields: bytes, peer: Callable[[], str]) -> Decision:
        """Reads a head not seen yet (`fields`: after the request line) and keeps what it says."""
        if len(self._decided) >= self.KEPT:
            self._decided.clear()
        key: bytes | tuple[bytes, str] = fields
        decided = self._read(data, peer)
        # A scheme a proxy says is believed only from a proxy trusted to say it: kept per peer.
        proxies = self._proxies
        if (isinstance(decided, _Decided) and decided.here is not None
                and (proxies.cloudflare or proxies.networks) and _PROXIED.search(fields.lower()) is not None):
            self._decided[fields] = _Seen.BY_PEER
            key = (fields, peer())
        self._decided[key] = decided
        return decided

    def _read(self, data: bytes, peer: Callable[[], str]) -> _Decided | None:
        """What `data`'s head says, or None when it is aiohttp's to read."""
        fields = plain_fields(data)
        if fields is None:
            return None
        lowered = fields.lower()
        names = _SINGLETONS.findall(lowered)
        if b"host" not in names or len(set(names)) != len(names):
            return None
        host = _HOST.search(fields)
        if host is None:
            return None  # a value with whitespace inside: aiohttp reads it
        conditional = lowered.count(b"if-none-match:")
        value = _IF_NONE_MATCH.search(fields) if conditional == 1 else None
        tag = _TAG.fullmatch(value.group(1)) if value is not None else None
        if conditional and tag is None:
            return None  # `*`, a list, two fields: aiohttp reads them
        here = here_at(host.group(1).decode("ascii"), lambda: self._scheme(fields, lowered, peer),
                       self._folder)
        return _Decided(here, tag.group(1).decode("ascii") if tag is not None else None, absolute(here))

    def _scheme(self, fields: bytes, lowered: bytes, peer: Callable[[], str]) -> tuple[str | None, bool]:
        """Proxies.scheme, read from the raw fields."""
        if _PROXIED.search(lowered) is None:
            return _OWN_SCHEME, False
        return self._proxies.scheme_of(_headers(fields), peer, _OWN_SCHEME)


def _pathway(query: bytes) -> str:
    """The first _HLS_pathway's value ("" when none or empty): read by a slice when it comes first."""
    if query.startswith(_PATHWAY_FIRST):
        end = query.find(b"&")
        return query[len(_PATHWAY_FIRST):end if end >= 0 else len(query)].decode("ascii")
    found = _PATHWAY.search(query)
    return found.group(1).decode("ascii") if found is not None and found.group(1) else ""


def _headers(fields: bytes) -> CIMultiDictProxy[str]:
    """The fields as aiohttp's parser gives them (values stripped)."""
    parsed: CIMultiDict[str] = CIMultiDict()
    for line in fields.decode("ascii").split("\r\n")[:-1]:
        name, _, value = line.partition(":")
        parsed.add(name, value.strip(" \t"))
    return CIMultiDictProxy(parsed)
