"""The VM's pathway over HTTP: the steering manifest players reload, and the segments the VM serves
(Owncast's file, or the copy a failed upload kept: bucket/held.py) while players are steered to it.

Segments: only a key a VM playlist listed is answered (SegmentCopies.servable): no URL names a file,
and a URL with a query is a redirect to the same one without (no bytes: the segment's URL is one cache key, as the Cache Rule in docs/steering.md keys it, so a fresh query per request is no way
past a CDN's cache). Each answer is what a CDN in front expects of an immutable object: the bucket's
Cache-Control (hls.SEGMENT_CACHE_CONTROL), a strong ETag and Last-Modified, 304 to If-None-Match (or
If-Modified-Since), one byte range (206, 416 past the end, If-Range honoured; several ranges get the
whole object, as RFC 9110 14.2 allows). Nothing here runs for a playlist request.

While the bucket serves (steering/policy.py's bucket_serves: the service's own evidence), a segment the
bucket holds is a 302 to its copy there (not cached: `no-store`), not bytes: a player without content
steering may play the VM's variants as redundant streams of the bucket's (6.3.4), hls.js keeps a pathway
it failed on in a penalty box for five minutes, and neither must cost the VM. The one exception is a
client whose own page reported failed fetches on the bucket within policy.REPORTED_FOR (a failure only
some viewers see: their players' own failover): its address gets bytes, at most one stream's bitrate
(the highest BANDWIDTH announced), whatever it claims, `private` (every other client gets a redirect:
no cache in front may hand those bytes to one). A segment the VM's playlists listed before its
upload landed (they show what they showed while players were away until the bucket's catch up) is a
503 to ask again (`late`) once the wait for its upload is over, not bytes.

The bytes are bounded three ways, past each a 503 with Retry-After (a player asks again): the bytes sent
per second in all (VM_SEGMENT_MBPS, a token bucket with ten seconds' burst); each client's share of them
(ClientShares: the rate divided among the clients that asked for bytes within ACTIVE_SECONDS, so one
client, however fast it asks, gets no more than a steered viewer may); and the answers being read or
sent at once, in all and per client. Clients served on their own report spend a pool of their own, a
quarter of the rate, burst and answers in flight (vm_budget.py's VmBytes): never the steered viewers'.
A client is its address as the viewer count and the tracker count it (http/watching.py's client_key:
IPv4 as such, IPv6 by its /48), named by a proxy only when trusted; every client whose address is
unknown shares one share. A client that resets its connection mid-answer is counted (`reset`), not
logged.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from ..numbers import whole_number
from ..playlist import hls
from ..bucket.held import HeldFile as Copy
from ..playlist.steering import reloaded_from
from ..steering.masters import MAX_HOSTS
from ..steering.metrics import LATE, REPORTED, RESET, SHARE
from .clients import Proxies, request_here
from .common import EDGE_HEADERS, edge_headers, unavailable
from .vm_budget import ByteBudget, ClientShares, Pool, VmBytes
from .watching import client_key

# Answers being read or sent at once (each holds its segment in memory, up to a few MB), and one client
# address's share of them: a CDN in front asks for a few at a time, a crowd without one is bounded here.
MAX_SENDING = 32
CLIENT_SHARE = 4
_UNKNOWN = ""  # the share of every client whose address is unknown
CAP_RETRY_AFTER = "1"
_FILE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.(?:ts|m4s|mp4|aac)"
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")
_MAX_VARIANT_DIGITS = 4
STEERING_QUERY_PATHWAY = "_HLS_pathway"
# A redirect to the bucket holds only while the bucket serves: no cache in front may keep it.
REDIRECT_CACHE_CONTROL = "no-store"
# Bytes every client asking gets (players steered here): what the bucket's copy says, for any cache.
SEGMENT_CACHE_CONTROL = hls.SEGMENT_CACHE_CONTROL
# Bytes one client gets on its own page's report, while everyone else gets a redirect: its own browser
# may keep them, a shared cache (nginx, Cloudflare's edge, as docs/steering.md's rules set them) never.
ONE_CLIENT_CACHE_CONTROL = "private, max-age=31536000, immutable"
# Requests waiting for their segment's upload to land before the redirect (each a coroutine on an event):
# past this, 503 and the player asks again.
MAX_WAITING = 1024


class SteeringSource(Protocol):
    def manifest(self) -> bytes:
        """The steering manifest as it is now."""

    def ttl(self) -> int:
        """Its TTL (seconds)."""


class SegmentCopies(Protocol):
    def servable(self, key: str) -> Copy | None: ...

    def read(self, copy: Copy) -> bytes: ...


class OwnFailure:
    """Whether a client gets bytes of its own while the bucket serves, and at what rate: `serves()` (the
    policy's bucket_serves), `failing(client)` (its page reported failed fetches on the bucket lately:
    policy.client_failing), `bitrate()` (bits a second of the highest variant announced; None before any).
    Without them (a test's VmSegments), nobody does."""

    def __init__(self, serves: Callable[[], bool] = lambda: False,
                 failing: Callable[[str | None], bool] = lambda client: False,
                 bitrate: Callable[[], int | None] = lambda: None) -> None:
        self._serves = serves
        self._failing = failing
        self._bitrate = bitrate

    def serves(self) -> bool:
        return self._serves()

    def stream_rate(self) -> float:
        """One stream's bytes a second (0 before a variant is announced)."""
        bits = self._bitrate()
        return bits / 8 if bits else 0.0

    def rate(self, client: str | None) -> float | None:
        """The bytes a second `client` may have while the bucket serves, or None: it is redirected."""
        rate = self.stream_rate()
        if not rate or not self._serves() or not self._failing(client):
            return None
        return rate


@dataclass(frozen=True, slots=True)
class _Manifest:
    """One place's steering manifest with its headers, built once per change (aiohttp copies a
    CIMultiDict into each response faster than a dict: the manifest is asked as often as a playlist)."""

    source: bytes  # the source's manifest it was made from (compared by identity)
    body: bytes
    etag: str
    headers: CIMultiDictProxy[str]
    unchanged: CIMultiDictProxy[str]  # a 304's: the same without Content-Type

    @classmethod
    def of(cls, source: bytes, body: bytes, ttl: int, shared: bool) -> _Manifest:
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        unchanged = CIMultiDict({**EDGE_HEADERS, hdrs.ETAG: etag, hdrs.CACHE_CONTROL:
                                 hls.steering_cache_control(ttl) if shared else hls.UNSHARED_CACHE_CONTROL})
        headers = CIMultiDict(unchanged)
        headers[hdrs.CONTENT_TYPE] = hls.STEERING_CONTENT_TYPE
        return cls(source, body, etag, CIMultiDictProxy(headers), CIMultiDictProxy(unchanged))


class SteeringRoute:
    """GET <folder>/steering.json: the manifest (any query: players add _HLS_pathway and _HLS_throughput,
    which change nothing in the answer; a CDN should leave the query out of its cache key), its
    RELOAD-URI absolute where it was asked (clients.request_here; playlist/steering.py's reloaded_from
    says why): one rendering per change and place, at most MAX_HOSTS places (past them, and for a Host
    that is not a plain host, without RELOAD-URI). Without a source (PATHWAYS=bucket), 410: a player
    holding an older multivariant playlist stops asking."""

    def __init__(self, source: SteeringSource | None, count: Callable[[str], None] = lambda pathway: None,
                 pathways: tuple[str, ...] = hls.PATHWAYS, proxies: Proxies = Proxies()) -> None:
        self._source = source
        self._count = count
        self._known = frozenset(pathways)
        self._proxies = proxies  # who may say the scheme the viewer used (clients.py)
        self._cached: dict[tuple[str, bool], _Manifest] = {}  # (place, shareable) -> the answer there
        self._places: set[str] = set()

    async def manifest(self, request: web.Request) -> web.Response:
        source = self._source
        if source is None:
            return web.Response(status=hls.STEERING_GONE_STATUS, text="no content steering here\n",
                                headers=edge_headers({hdrs.CACHE_CONTROL: "public, max-age=3600"}))
        pathway = request.query.get(STEERING_QUERY_PATHWAY, "")
        self._count(pathway if pathway in self._known else "other" if pathway else "none")
        body = source.manifest()  # a new one whenever the priority or the TTL changes
        here = request_here(request, self._proxies)
        place = "" if here is None else here.base
        if place not in self._places:
            if len(self._places) >= MAX_HOSTS:
                place = ""  # past the bound: the manifest as the source renders it, without RELOAD-URI
            else:
                self._places.add(place)
        shared = not place or here is None or here.shared
        cached = self._cached.get((place, shared))
        if cached is None or cached.source is not body:
            cached = self._cached[(place, shared)] = _Manifest.of(body, reloaded_from(body, place or None),
                                                                  source.ttl(), shared)
        if _none_match(request, cached.etag):
            return web.Response(status=304, headers=cached.unchanged)
        return web.Response(body=cached.body, headers=cached.headers)


class VmSegments:
    """GET <folder>/vm/<n>/<file>: a segment (or init section) of the VM's pathway, from its copy of the
    key `key_for(n, file)` makes (the bucket's key: where the copy was kept)."""

    def __init__(self, copies: SegmentCopies, key_for: Callable[[int, str], str], budget: ByteBudget, *,
                 on_sent: Callable[[int | str, int], None] = lambda status, size: None,
                 max_sending: int = MAX_SENDING, proxies: Proxies = Proxies(),
                 elsewhere: Callable[[int, str], Awaitable[str | None]] | None = None,
                 landed: Callable[[int, str], str | None] = lambda variant, name: None,
                 shares: ClientShares | None = None, own_failure: OwnFailure | None = None) -> None:
        self._copies = copies
        self._key_for = key_for
        # (variant, file) -> the bucket's URL to send the player to (waiting a moment for its upload to
        # land), or None: the VM answers.
        self._elsewhere = elsewhere
        self._landed = landed  # (variant, file) -> the bucket's URL now, while it serves, or None
        self._waiting = 0
        # Viewers steered here by the service's own evidence spend `budget`; clients served on their own
        # page's report, a pool of their own (vm_budget.py).
        self._bytes = VmBytes(budget, max_sending, shares)
        self._own_failure = own_failure or OwnFailure()
        self._on_sent = on_sent  # (status, body bytes) of every answer
        self._max_sending = max_sending
        self._max_per_client = max(1, max_sending // CLIENT_SHARE)
        self._sending = 0
        self._sending_reported = 0  # of them, answers to clients on their own page's report
        self._by_client: dict[str, int] = {}
        self._proxies = proxies  # who names the client

    @property
    def sending(self) -> int:
        return self._sending

    async def segment(self, request: web.Request) -> web.StreamResponse:
        digits, name = request.match_info["n"], request.match_info["file"]
        if (whole_number(digits, _MAX_VARIANT_DIGITS) is None or (digits != "0" and digits.startswith("0"))
                or not re.fullmatch(_FILE, name)):
            return self._answer(_not_here())
        if request.query_string:  # one URL per segment: a CDN keys it once (docs/steering.md's Cache Rule)
            return self._answer(_redirect(request.rel_url.raw_path))
        client = client_key(request, self._proxies)
        # A client whose own page failed on the bucket (while the bucket serves everyone else): its own
        # bounded bytes, not a redirect to where it fails.
        own = self._own_failure.rate(client)
        if own is None and (there := self._landed(int(digits), name)) is not None:
            # The bucket serves and has it: a redirect, with no look at the VM's file (players still on the
            # VM's pathway after an outage ask here for every segment).
            return self._answer(_redirect(there))
        copy = self._copies.servable(self._key_for(int(digits), name))
        if copy is None:
            # Listed, but neither Owncast's file nor a copy here (deleted, dropped for the byte cap or the
            # disk): the bucket's, if it has it now. Looked up, never waited for: a name nobody listed must
            # cost nothing.
            there = self._landed(int(digits), name)
            if there is None:
                return self._answer(_not_here())
            return self._answer(_redirect(there))
        if self._elsewhere is not None and own is None:
            if self._waiting >= MAX_WAITING:
                return self._answer(unavailable("too many segment requests waiting, try again shortly\n", "1"))
            self._waiting += 1
            try:
                there = await self._elsewhere(int(digits), name)
            finally:
                self._waiting -= 1
            if there is not None:
                return self._answer(_redirect(there))
            if self._own_failure.serves():
                # Listed on the VM's pathway (its playlists show what they showed while players were away,
                # until the bucket's catch up) and not landed within the wait: asked again in a moment, it
                # is a redirect. Bytes would cost the VM while the bucket serves.
                late = unavailable("not in the bucket yet, try again shortly\n", CAP_RETRY_AFTER)
                return self._answer(late, LATE)
        # Bytes on a client's own report are that client's answer (another gets a redirect): no cache in
        # front may hand them to anyone else.
        headers = _headers(copy, SEGMENT_CACHE_CONTROL if own is None else ONE_CLIENT_CACHE_CONTROL)
        if _not_modified(request, copy):
            return self._answer(web.Response(status=304, headers=headers))
        span = _range(request, copy)
        if span is None:
            headers[hdrs.CONTENT_RANGE] = f"bytes */{copy.size}"
            return self._answer(web.Response(status=416, headers=headers))
        start, end = span
        partial = (start, end) != (0, copy.size - 1)
        if partial:
            headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{end}/{copy.size}"
        size = end - start + 1
        if request.method == hdrs.METH_HEAD:
            headers[hdrs.CONTENT_LENGTH] = str(size)
            return self._answer(web.Response(status=206 if partial else 200, headers=headers))
        pool = self._bytes.pool(own is not None)
        refused = self._refused(client, size, own, pool)
        if refused is not None:
            return refused
        self._sending += 1
        self._sending_reported += own is not None
        key = _UNKNOWN if client is None else client
        self._by_client[key] = self._by_client.get(key, 0) + 1
        try:
            return await self._send(request, copy, headers, (start, end) if partial else None)
        except FileNotFoundError:  # dropped since it was looked up (its time was up, or the byte cap)
            pool.shares.give(key, size)  # nothing sent: its bytes go back to its share and the cap
            pool.budget.give(size)
            return self._answer(_not_here())
        finally:
            self._sending -= 1
            self._sending_reported -= own is not None
            if self._by_client[key] == 1:
                del self._by_client[key]
            else:
                self._by_client[key] -= 1

    def _refused(self, client: str | None, size: int, own: float | None, pool: Pool) -> web.Response | None:
        """The 503 for an answer of `size` bytes past a bound, or None when it may go (its bytes taken
        from `pool`: the reporters' when `own` is its rate)."""
        key = _UNKNOWN if client is None else client
        if own is not None and self._sending_reported >= pool.most_sending:
            # Reporters' answers in flight: their part of the slots, never a steered viewer's.
            return self._answer(unavailable("too many segment requests at once, try again shortly\n", "1"),
                                REPORTED)
        if self._sending >= self._max_sending or (
                client is not None and self._by_client.get(key, 0) >= self._max_per_client):
            return self._answer(unavailable("too many segment requests at once, try again shortly\n", "1"))
        shares = pool.shares
        if not shares.take(key, size, own):
            # Its own share, unless it is alone (the cap for everyone) or a share is less than a stream
            # (too many clients for VM_SEGMENT_MBPS): then viewers steered here stall, and the alert on
            # 503s says so.
            short = own is None and (shares.active <= 1 or shares.fair() < self._own_failure.stream_rate())
            return self._answer(unavailable("this client's share of the VM's segment bytes is reached\n",
                                            CAP_RETRY_AFTER), None if short else SHARE)
        if not pool.budget.take(size):
            shares.give(key, size)
            if own is not None:  # the reporters' part is spent: theirs to wait for, nobody else's
                return self._answer(unavailable("the VM's bytes for clients reporting failures are spent for "
                                                "now\n", CAP_RETRY_AFTER), REPORTED)
            return self._answer(unavailable("the VM's segment byte cap (VM_SEGMENT_MBPS) is reached\n",
                                            CAP_RETRY_AFTER))
        return None

    async def _send(self, request: web.Request, copy: Copy, headers: dict[str, str],
                    span: tuple[int, int] | None) -> web.StreamResponse:
        """The copy's bytes (or `span` of them); FileNotFoundError when it went since it was looked up."""
        data = await asyncio.get_running_loop().run_in_executor(None, self._copies.read, copy)
        body = data if span is None else data[span[0]:span[1] + 1]
        response = web.Response(status=200 if span is None else 206, body=body, headers=headers)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:  # the client reset mid-answer: aiohttp would log it as an error
            self._on_sent(RESET, 0)
            return response
        except asyncio.CancelledError:  # ... or, handler_cancellation on, cancelled this handler
            self._on_sent(RESET, 0)
            raise
        self._on_sent(response.status, len(body))
        return response

    def _answer(self, response: web.Response, label: str | None = None) -> web.Response:
        self._on_sent(response.status if label is None else label, 0)
        return response


def _redirect(there: str) -> web.Response:
    return web.Response(status=302, headers=edge_headers({hdrs.LOCATION: there,
                                                          hdrs.CACHE_CONTROL: REDIRECT_CACHE_CONTROL}))


def _not_here() -> web.Response:
    # Not cached: a segment not kept yet may be listed a moment later.
    return web.Response(status=404, text="not a segment the VM's playlists list\n",
                        headers=edge_headers({hdrs.CACHE_CONTROL: hls.UNREADY_CACHE_CONTROL}))


def _headers(copy: Copy, cache_control: str) -> dict[str, str]:
    return {**EDGE_HEADERS, hdrs.CACHE_CONTROL: cache_control, hdrs.ETAG: copy.etag,
            hdrs.LAST_MODIFIED: email.utils.formatdate(copy.modified, usegmt=True),
            hdrs.ACCEPT_RANGES: "bytes", hdrs.CONTENT_TYPE: copy.content_type}


def _none_match(request: web.Request, etag: str) -> bool:
    """If-None-Match, weak comparison (RFC 9110 13.1.2): W/"x" matches "x"; "*" matches."""
    if hdrs.IF_NONE_MATCH not in request.headers:
        return False
    value = etag.strip('"')
    return any(tag.value in (value, "*") for tag in request.if_none_match or ())


def _not_modified(request: web.Request, copy: Copy) -> bool:
    """304: If-None-Match matches; or, without If-None-Match, not modified since If-Modified-Since
    (RFC 9110 13.1.3: ignored when If-None-Match is present)."""
    if hdrs.IF_NONE_MATCH in request.headers:
        return _none_match(request, copy.etag)
    since = request.if_modified_since
    return since is not None and copy.modified <= since.timestamp()


def _range(request: web.Request, copy: Copy) -> tuple[int, int] | None:
    """(first, last) byte to send: the whole object, or the one range asked for; None: unsatisfiable."""
    whole = (0, copy.size - 1)
    text = request.headers.get(hdrs.RANGE)
    if text is None or not _if_range_holds(request, copy):
        return whole
    match = _RANGE.fullmatch(text.strip())
    if match is None:  # several ranges, another unit, or not a range: the whole object (14.2)
        return whole
    first, last = match[1], match[2]
    if not first:
        if not last or int(last) == 0:
            return None if last else whole
        return max(0, copy.size - int(last)), copy.size - 1  # the last N bytes
    start = int(first)
    end = copy.size - 1 if not last else min(int(last), copy.size - 1)
    if last and int(last) < start:
        return whole  # invalid: ignored
    if start >= copy.size:
        return None
    return start, end


def _if_range_holds(request: web.Request, copy: Copy) -> bool:
    """If-Range (RFC 9110 13.1.5): the range only while the object is still that one (strong ETag, or
    exactly its Last-Modified)."""
    value = request.headers.get(hdrs.IF_RANGE)
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', 'W/')):
        return value == copy.etag
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return when.timestamp() == copy.modified
