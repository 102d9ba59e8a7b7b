"""GET <folder>/vm/<n>/<file>: a segment the VM's playlists listed, as an immutable object (the bucket's
Cache-Control, a strong ETag, 304, one byte range); while the bucket serves, a `no-store` 302 to its copy
there, but bytes for a client whose own page failed on it. Bounded per second, per client and at once."""
from __future__ import annotations

import asyncio
import email.utils
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import hdrs, web

from ..edge import EDGE_HEADERS, edge_headers, unavailable
from ..numbers import whole_number
from ..playlist import hls
from ..steering.metrics import LATE, REPORTED, RESET, SHARE
from .budget import Pool, VmBytes
from .held import HeldFile as Copy
from .ranges import byte_range, not_modified

CLIENT_SHARE = 4  # one client's share of the answers in flight (a CDN asks for a few at a time)
_UNKNOWN = ""  # the share of every client whose address is unknown
CAP_RETRY_AFTER = "1"
_FILE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.(?:ts|m4s|mp4|aac)"
_MAX_VARIANT_DIGITS = 4
REDIRECT_CACHE_CONTROL = "no-store"  # holds only while the bucket serves
SEGMENT_CACHE_CONTROL = hls.SEGMENT_CACHE_CONTROL  # bytes for players steered here, as the bucket's copy
ONE_CLIENT_CACHE_CONTROL = "private, max-age=31536000, immutable"  # one client's, on its report: no CDN
MAX_WAITING = 1024  # requests waiting for their segment's upload to land: past this, 503


class BucketCopy(Protocol):
    """Where the VM sends a player for a segment while the first bucket serves (bucket_copy.InBucket)."""

    def now(self, variant: int, name: str) -> str | None: ...

    def doubted(self) -> bool: ...

    async def within(self, variant: int, name: str) -> str | None: ...


class SegmentCopies(Protocol):
    def servable(self, key: str) -> Copy | None: ...

    def read(self, copy: Copy) -> bytes: ...


@dataclass(frozen=True)
class OwnFailure:
    """Whether a client gets bytes of its own while the bucket serves, and at what rate (None: nobody)."""

    serves: Callable[[], bool] = lambda: False
    failing: Callable[[str | None], bool] = lambda client: False
    bitrate: Callable[[], int | None] = lambda: None

    def stream_rate(self) -> float:
        """One stream's bytes a second (0 before a variant is announced)."""
        return bits / 8 if (bits := self.bitrate()) else 0.0

    def rate(self, client: str | None) -> float | None:
        """The bytes a second `client` may have while the bucket serves, or None: it is redirected."""
        rate = self.stream_rate()
        return rate if rate and self.serves() and self.failing(client) else None


class VmSegments:
    """GET <folder>/vm/<n>/<file>: a segment of the VM's pathway, held under the key `key_for(n, file)`."""

    def __init__(self, copies: SegmentCopies, key_for: Callable[[int, str], str], vm_bytes: VmBytes, *,
                 on_sent: Callable[[int | str, int], None] = lambda status, size: None,
                 client: Callable[[web.Request], str | None] = lambda request: None,
                 bucket: BucketCopy | None = None, own_failure: OwnFailure | None = None) -> None:
        """`client`: the client's address (None: unknown); `bucket`: None when the VM answers all it lists."""
        self._copies = copies
        self._key_for = key_for
        self._bucket = bucket
        self._waiting = 0
        self._bytes = vm_bytes
        self._own_failure = own_failure or OwnFailure()
        self._on_sent = on_sent  # (status, body bytes) of every answer
        self._max_sending = vm_bytes.steered.most_sending
        self._max_per_client = max(1, self._max_sending // CLIENT_SHARE)
        self._sending = 0
        self._sending_reported = 0  # of them, answers to clients on their own page's report
        self._by_client: dict[str, int] = {}
        self._client = client

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
        client, variant = self._client(request), int(digits)
        own = self._own_failure.rate(client)  # its own page failed on the bucket: bytes, not a redirect
        bucket = self._bucket
        if (own is None and bucket is not None and (there := bucket.now(variant, name)) is not None
                and not bucket.doubted()):
            return self._answer(_redirect(there))  # the bucket has it (doubted: the wait below decides)
        if (copy := self._copies.servable(self._key_for(variant, name))) is None:
            there = bucket.now(variant, name) if bucket is not None else None  # not waited for: cheap
            return self._answer(_not_here() if there is None else _redirect(there))
        if bucket is not None and own is None:
            if self._waiting >= MAX_WAITING:
                return self._answer(unavailable("too many segment requests waiting, try again shortly\n", "1"))
            self._waiting += 1
            try:
                there = await bucket.within(variant, name)
            finally:
                self._waiting -= 1
            if there is not None:
                return self._answer(_redirect(there))
            if self._own_failure.serves():  # not landed within the wait: asked again soon, a redirect
                late = unavailable("not in the bucket yet, try again shortly\n", CAP_RETRY_AFTER)
                return self._answer(late, LATE)
        headers = _headers(copy, SEGMENT_CACHE_CONTROL if own is None else ONE_CLIENT_CACHE_CONTROL)
        if not_modified(request, copy):
            return self._answer(web.Response(status=304, headers=headers))
        if (span := byte_range(request, copy)) is None:
            headers[hdrs.CONTENT_RANGE] = f"bytes */{copy.size}"
            return self._answer(web.Response(status=416, headers=headers))
        start, end = span
        if partial := (start, end) != (0, copy.size - 1):
            headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{end}/{copy.size}"
        size = end - start + 1
        if request.method == hdrs.METH_HEAD:
            headers[hdrs.CONTENT_LENGTH] = str(size)
            return self._answer(web.Response(status=206 if partial else 200, headers=headers))
        pool = self._bytes.pool(own is not None)
        if (refused := self._refused(client, size, own, pool)) is not None:
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
            self._by_client[key] -= 1
            if not self._by_client[key]:
                del self._by_client[key]

    def _refused(self, client: str | None, size: int, own: float | None, pool: Pool) -> web.Response | None:
        """The 503 for an answer of `size` bytes past a bound, or None when it may go (taken from `pool`)."""
        key = _UNKNOWN if client is None else client
        reporters = own is not None and self._sending_reported >= pool.most_sending  # their part of the slots
        if reporters or self._sending >= self._max_sending or (
                client is not None and self._by_client.get(key, 0) >= self._max_per_client):
            return self._answer(unavailable("too many segment requests at once, try again shortly\n", "1"),
                                REPORTED if reporters else None)
        shares = pool.shares
        if not shares.take(key, size, own):
            # SHARE, unless it is alone or a share is less than a stream: the 503s' alert then says so.
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
        except (ConnectionError, asyncio.CancelledError) as err:  # a reset (else logged as an error)
            self._on_sent(RESET, 0)
            if isinstance(err, asyncio.CancelledError):
                raise
            return response
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


