"""Conditional requests and byte ranges of one object (RFC 9110 13 and 14): what a CDN in front of the
VM's segments, and a player seeking in one, send."""

from __future__ import annotations

import email.utils
import re
from typing import Protocol

from aiohttp import hdrs, web

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


class Object(Protocol):
    """What the answers here read of the object: its strong ETag, size and Last-Modified (Unix seconds)."""

    @property
    def etag(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def modified(self) -> float: ...


def none_match(request: web.Request, etag: str) -> bool:
    """If-None-Match, weak comparison (RFC 9110 13.1.2): W/"x" matches "x"; "*" matches."""
    if hdrs.IF_NONE_MATCH not in request.headers:
        return False
    value = etag.strip('"')
    return any(tag.value in (value, "*") for tag in request.if_none_match or ())


def not_modified(request: web.Request, copy: Object) -> bool:
    """304: If-None-Match matches; or, without it, not modified since If-Modified-Since (RFC 9110 13.1.3)."""
    if hdrs.IF_NONE_MATCH in request.headers:
        return none_match(request, copy.etag)
    since = request.if_modified_since
    return since is not None and copy.modified <= since.timestamp()


def byte_range(request: web.Request, copy: Object) -> tuple[int, int] | None:
    """(first, last) byte to send: the whole object, or the one range asked for; None: unsatisfiable."""
    whole = (0, copy.size - 1)
    if (text := request.headers.get(hdrs.RANGE)) is None or not _if_range_holds(request, copy):
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
    return None if start >= copy.size else (start, end)


def _if_range_holds(request: web.Request, copy: Object) -> bool:
    """If-Range (RFC 9110 13.1.5): the range only while the object is still that one."""
    if (value := request.headers.get(hdrs.IF_RANGE)) is None:
        return True
    value = value.strip()
    if value.startswith(('"', 'W/')):
        return value == copy.etag
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return when.timestamp() == copy.modified
