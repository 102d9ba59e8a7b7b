"""A playlist version's answer: plain or gzipped, its headers, a 304 for a matching If-None-Match; and the
same 200 as bytes for a plain GET answered before aiohttp parses it (quick.py). Headers are built once per
version (keyed by ETag), not per request."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from aiohttp import hdrs, web
from aiohttp.helpers import rfc822_formatted_time
from multidict import CIMultiDict, CIMultiDictProxy

from ..edge import EDGE_HEADERS
from ..playlist import hls
from ..playlist.rendered import Rendered
from ..vm.ranges import none_match

_KEPT = 64  # versions whose headers are kept: only the newest few are requested


def rendered_response(request: web.Request, rendered: Rendered, cache_control: str) -> web.Response:
    """One rendering, plain or gzipped (compressed once per change, not per request), or a 304."""
    gzipped = accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
    body, etag = _body(rendered, gzipped)
    if hdrs.IF_NONE_MATCH in request.headers and none_match(request, etag):
        return web.Response(status=304, headers=playlist_headers(etag, cache_control, gzipped, False))
    return web.Response(body=body, headers=playlist_headers(etag, cache_control, gzipped, True))


def _body(rendered: Rendered, gzipped: bool) -> tuple[bytes, str]:
    """The body and its ETag; the plain one is bounded (hls.MAX_IDENTITY_BYTES)."""
    if gzipped:
        return rendered.gzip_body, rendered.gzip_etag
    plain = rendered.identity
    return plain.body, plain.etag


@functools.lru_cache(maxsize=_KEPT)
def playlist_headers(etag: str, cache_control: str, gzipped: bool, with_body: bool) -> CIMultiDictProxy[str]:
    """What a playlist answer carries beside what aiohttp adds (Content-Length, Date)."""
    built = CIMultiDict({**EDGE_HEADERS, hdrs.CACHE_CONTROL: cache_control, hdrs.ETAG: etag,
                         hdrs.VARY: hdrs.ACCEPT_ENCODING})
    if with_body:
        built[hdrs.CONTENT_TYPE] = hls.PLAYLIST_CONTENT_TYPE
        if gzipped:
            built[hdrs.CONTENT_ENCODING] = "gzip"
    return CIMultiDictProxy(built)


def quick_answer(rendered: Rendered, cache_control: str, gzipped: bool) -> tuple[bytes, bytes]:
    """rendered_response's 200 as bytes: its head up to the Date aiohttp would add, and its body."""
    body, etag = _body(rendered, gzipped)
    return _quick_head(etag, cache_control, gzipped, len(body)), body


@functools.lru_cache(maxsize=_KEPT)
def _quick_head(etag: str, cache_control: str, gzipped: bool, length: int) -> bytes:
    return raw_head("200 OK", playlist_headers(etag, cache_control, gzipped, True), length)


def raw_head(status: str, headers: Mapping[str, str], length: int | None) -> bytes:
    """A status line and headers as aiohttp writes them before its Date (`length`: None for a 304)."""
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    if length is not None:
        lines.append(f"{hdrs.CONTENT_LENGTH}: {length}\r\n")
    return ("HTTP/1.1 " + status + "\r\n" + "".join(lines)).encode("latin-1")


@functools.lru_cache(maxsize=1)  # aiohttp's Date changes once a second
def _date_line(date: str) -> bytes:
    return f"Date: {date}\r\n\r\n".encode("ascii")


def dated(head: bytes, body: bytes) -> bytes:
    """A quick_answer whole, with the Date aiohttp would add."""
    return b"".join((head, _date_line(rfc822_formatted_time()), body))


@functools.lru_cache(maxsize=256)  # clients send the same few headers over and over
def accepts_gzip(accept_encoding: str) -> bool:
    """RFC 9110 12.5.3: gzip (or x-gzip, else "*") listed with q > 0. Plain is always acceptable."""
    wildcard = 0.0
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return _qvalue(params) > 0
        if coding == "*":
            wildcard = _qvalue(params)
    return wildcard > 0


def _qvalue(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                return 0.0  # unreadable: fall back to the plain body, which is always valid
            return q if 0.0 <= q <= 1.0 else 0.0  # also rejects nan and inf
    return 1.0
