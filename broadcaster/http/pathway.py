"""The VM's pathway over HTTP: the steering manifest players reload, and the segments the VM serves
from its own copies (steering/copies.py) while players are steered to it.

Segments: only a key a VM playlist listed is answered (Copies.servable), looked up in an index: no URL
names a file. Each answer is what a CDN in front expects of an immutable object: the bucket's
Cache-Control (hls.SEGMENT_CACHE_CONTROL), a strong ETag and Last-Modified, 304 to If-None-Match (or
If-Modified-Since), one byte range (206, 416 past the end, If-Range honoured; several ranges get the
whole object, as RFC 9110 14.2 allows). Bounded: the bytes sent per second (VM_SEGMENT_MBPS, a token
bucket with ten seconds' burst), the answers being read or sent at once, and per client address a
share of those; past a bound, 503 with Retry-After. Nothing here runs for a playlist request.

While the bucket serves (steering/policy.py's bucket_serves), a segment the bucket holds is a 302 to its
copy there (not cached: `no-store`), not bytes: a player without content steering may play the VM's
variants as redundant streams of the bucket's (6.3.4), and fetches its segments from the bucket all the
same. The VM sends segment bytes while players are steered to it, for a segment the bucket does not
have yet, and for a few seconds after a viewer page reported a failure on the bucket.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import hdrs, web

from ..numbers import whole_number
from ..playlist import hls
from ..bucket.held import HeldFile as Copy
from ..playlist.steering import reloaded_from
from ..steering.masters import MAX_HOSTS
from .common import EDGE_HEADERS, edge_headers, unavailable
from .clients import Proxies, client_address, request_here

# Answers being read or sent at once (each holds its segment in memory, up to a few MB), and one client
# address's share of them: a CDN in front asks for a few at a time, a crowd without one is bounded here.
MAX_SENDING = 32
CLIENT_SHARE = 4
BURST_SECONDS = 10.0  # the byte budget lets this much of its rate go at once (a CDN fills several variants)
CAP_RETRY_AFTER = "1"
_FILE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.(?:ts|m4s|mp4|aac)"
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")
_MAX_VARIANT_DIGITS = 4
STEERING_QUERY_PATHWAY = "_HLS_pathway"
# A redirect to the bucket holds only while the bucket serves: no cache in front may keep it.
REDIRECT_CACHE_CONTROL = "no-store"
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


class ByteBudget:
    """A token bucket of bytes: `rate` a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._clock = clock
        self._at = clock()

    def take(self, size: int) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if size > self._tokens:
            return False
        self._tokens -= size
        return True


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
        # (place, shareable) -> (the source's manifest, its TTL, the manifest there, its headers)
        self._cached: dict[tuple[str, bool], tuple[bytes, int, bytes, dict[str, str]]] = {}
        self._places: set[str] = set()

    async def manifest(self, request: web.Request) -> web.Response:
        source = self._source
        if source is None:
            return web.Response(status=hls.STEERING_GONE_STATUS, text="no content steering here\n",
                                headers=edge_headers({hdrs.CACHE_CONTROL: "public, max-age=3600"}))
        pathway = request.query.get(STEERING_QUERY_PATHWAY, "")
        self._count(pathway if pathway in self._known else "other" if pathway else "none")
        body, ttl = source.manifest(), source.ttl()
        here = request_here(request, self._proxies)
        place = "" if here is None else here.base
        if place not in self._places:
            if len(self._places) >= MAX_HOSTS:
                place = ""  # past the bound: the manifest as the source renders it, without RELOAD-URI
            else:
                self._places.add(place)
        shared = not place or here is None or here.shared
        cached = self._cached.get((place, shared))
        if cached is None or cached[0] is not body or cached[1] != ttl:
            there = reloaded_from(body, place or None)
            etag = '"' + hashlib.blake2b(there, digest_size=8).hexdigest() + '"'
            headers = edge_headers({
                hdrs.CACHE_CONTROL: hls.steering_cache_control(ttl) if shared else hls.UNSHARED_CACHE_CONTROL,
                hdrs.ETAG: etag, hdrs.CONTENT_TYPE: hls.STEERING_CONTENT_TYPE})
            self._cached[(place, shared)] = cached = (body, ttl, there, headers)
        headers = cached[3]
        if _none_match(request, headers[hdrs.ETAG]):
            return web.Response(status=304, headers={k: v for k, v in headers.items() if k != hdrs.CONTENT_TYPE})
        return web.Response(body=cached[2], headers=headers)


class VmSegments:
    """GET <folder>/vm/<n>/<file>: a segment (or init section) of the VM's pathway, from its copy of the
    key `key_for(n, file)` makes (the bucket's key: where the copy was kept)."""

    def __init__(self, copies: SegmentCopies, key_for: Callable[[int, str], str], budget: ByteBudget, *,
                 on_sent: Callable[[int, int], None] = lambda status, size: None, max_sending: int = MAX_SENDING,
                 proxies: Proxies = Proxies(),
                 elsewhere: Callable[[int, str], Awaitable[str | None]] | None = None,
                 landed: Callable[[int, str], str | None] = lambda variant, name: None) -> None:
        self._copies = copies
        self._key_for = key_for
        # (variant, file) -> the bucket's URL to send the player to (waiting a moment for its upload to
        # land), or None: the VM answers.
        self._elsewhere = elsewhere
        self._landed = landed  # (variant, file) -> the bucket's URL now, while it serves, or None
        self._waiting = 0
        self._budget = budget
        self._on_sent = on_sent  # (status, body bytes) of every answer
        self._max_sending = max_sending
        self._max_per_client = max(1, max_sending // CLIENT_SHARE)
        self._sending = 0
        self._by_client: dict[str, int] = {}
        self._proxies = proxies  # who names the client (its share of the answers in flight)

    @property
    def sending(self) -> int:
        return self._sending

    async def segment(self, request: web.Request) -> web.StreamResponse:
        digits, name = request.match_info["n"], request.match_info["file"]
        if (whole_number(digits, _MAX_VARIANT_DIGITS) is None or (digits != "0" and digits.startswith("0"))
                or not re.fullmatch(_FILE, name)):
            return self._answer(_not_here())
        copy = self._copies.servable(self._key_for(int(digits), name))
        if copy is None:
            # Listed, but no copy here (dropped for the byte cap or the disk): the bucket's, if it has it
            # now. Looked up, never waited for: a name nobody listed must cost nothing.
            there = self._landed(int(digits), name)
            if there is None:
                return self._answer(_not_here())
            return self._answer(_redirect(there))
        if self._elsewhere is not None:
            if self._waiting >= MAX_WAITING:
                return self._answer(unavailable("too many segment requests waiting, try again shortly\n", "1"))
            self._waiting += 1
            try:
                there = await self._elsewhere(int(digits), name)
            finally:
                self._waiting -= 1
            if there is not None:
                return self._answer(_redirect(there))
        headers = _headers(copy)
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
        client = client_address(request, self._proxies)
        if self._sending >= self._max_sending or (
                client is not None and self._by_client.get(client, 0) >= self._max_per_client):
            return self._answer(unavailable("too many segment requests at once, try again shortly\n", "1"))
        if not self._budget.take(size):
            return self._answer(unavailable("the VM's segment byte cap (VM_SEGMENT_MBPS) is reached\n",
                                            CAP_RETRY_AFTER))
        self._sending += 1
        if client is not None:
            self._by_client[client] = self._by_client.get(client, 0) + 1
        try:
            try:
                data = await asyncio.get_running_loop().run_in_executor(None, self._copies.read, copy)
            except FileNotFoundError:  # dropped since it was looked up (its time was up, or the byte cap)
                return self._answer(_not_here())
            body = data[start:end + 1] if partial else data
            response = web.Response(status=206 if partial else 200, body=body, headers=headers)
            await response.prepare(request)
            await response.write_eof()
            self._on_sent(response.status, len(body))
            return response
        finally:
            self._sending -= 1
            if client is not None:
                if self._by_client[client] == 1:
                    del self._by_client[client]
                else:
                    self._by_client[client] -= 1

    def _answer(self, response: web.Response) -> web.Response:
        self._on_sent(response.status, 0)
        return response


def _redirect(there: str) -> web.Response:
    return web.Response(status=302, headers=edge_headers({hdrs.LOCATION: there,
                                                          hdrs.CACHE_CONTROL: REDIRECT_CACHE_CONTROL}))


def _not_here() -> web.Response:
    # Not cached: a segment not kept yet may be listed a moment later.
    return web.Response(status=404, text="not a segment the VM's playlists list\n",
                        headers=edge_headers({hdrs.CACHE_CONTROL: hls.UNREADY_CACHE_CONTROL}))


def _headers(copy: Copy) -> dict[str, str]:
    return {**EDGE_HEADERS, hdrs.CACHE_CONTROL: hls.SEGMENT_CACHE_CONTROL, hdrs.ETAG: copy.etag,
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
