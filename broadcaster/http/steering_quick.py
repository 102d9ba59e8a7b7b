"""The steering manifest answered before aiohttp parses the request, as a plain playlist reload is
(quick.py): only when the Host, a trusted proxy's scheme, `_HLS_pathway` and If-None-Match read from the
raw head exactly as aiohttp reads them, by SteeringRoute.answer_at (one cache and count for both). Public
streams only; the connection's own scheme is `http` (a TLS front is a proxy that says the viewer's)."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy

from .answers import dated
from .clients import Here, Proxies, here_at
from .quick import plain_fields
from .steering_route import STEERING_QUERY_PATHWAY, SteeringRoute, absolute

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
    """The steering manifest at `/<folder>/steering.json` from the raw request (quick.Whole). What a head's
    fields say is read once and kept by their bytes (and peer, for a proxy's word), at most KEPT heads."""

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
