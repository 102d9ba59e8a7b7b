"""One URL per answer (docs/hls-rules.md): the canonical spelling of a playlist request, and the redirect
to it from any other, so a cache in front keys each answer once."""

from __future__ import annotations

from aiohttp import hdrs, web
from multidict import MultiMapping

from ..edge import edge_headers
from ..numbers import whole_number
from ..playlist import hls

BLOCKING_PARAMS = frozenset({"_HLS_msn", "_HLS_part", "_HLS_skip"})
# A redirect to the canonical URL is a pure function of the URL asked: cacheable (a CDN may keep it).
CANONICAL_CACHE_CONTROL = "public, max-age=60"
# A redirect from a number listed long before to the newest version depends on when it is asked: not
# kept. Sent only to a client past its budget of late answers (late.py).
LISTED_CACHE_CONTROL = hls.UNREADY_CACHE_CONTROL
SKIP = "YES"  # the one spelling of _HLS_skip: "v2" (skip date ranges too) gets the same answer here


def blocking_param(value: str | None) -> str | None:
    """A blocking-reload parameter up to a stray `?` (old Owncast pages send `_HLS_msn=12?cachebust=3`)."""
    return value.partition("?")[0] if value is not None else None


def request_target(request: web.Request) -> str:
    """The request's path and query exactly as sent: what a cache in front keys the answer by (nginx's
    $request_uri). An absolute-form target (`GET http://host/path`) counts from its path."""
    raw = request.raw_path
    if raw.startswith("/"):
        return raw
    _, scheme, rest = raw.partition("://")
    slash = rest.find("/")
    return rest[slash:] if scheme and slash >= 0 else "/"


def canonical_query(query: MultiMapping[str], blocking: bool) -> str | None:
    """The canonical URL's query string, from the decoded `query`; None when a directive is bad (400). Only
    what the service uses (with blocking reload, `_HLS_msn` then `_HLS_skip`): anything else (`?cachebust=`,
    an attacker's fresh value) would be a cache key per request."""
    if not blocking:
        return ""
    values: dict[str, str] = {}
    for name in BLOCKING_PARAMS & query.keys():
        # A repeated name: its last value (Shaka 4.16 adds its next _HLS_msn after a redirect's).
        value = blocking_param(query.getall(name)[-1]) or ""
        if name == "_HLS_skip":
            if value not in hls.SKIP_REQUEST_VALUES:
                return None
            values[name] = SKIP
            continue
        number = whole_number(value)
        if number is None:
            return None
        values[name] = str(number)
    if "_HLS_part" in values and "_HLS_msn" not in values:
        return None  # an error (6.2.5.2): answered 400
    return "&".join(f"{name}={values[name]}" for name in ("_HLS_msn", "_HLS_skip") if name in values)


def answered_as_sent(query: str, blocking: bool) -> bool:
    """Whether a query as sent is the canonical directives in either order (video.js asks
    `_HLS_skip=YES&_HLS_msn=N`): answered with no redirect."""
    if not blocking or not query:
        return False
    seen: list[str] = []
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        if not equals or name in seen:
            return False
        if name == "_HLS_msn":
            if whole_number(value) is None or (value[0] == "0" and value != "0"):
                return False
        elif name != "_HLS_skip" or value != SKIP:
            return False
        seen.append(name)
    return True


def respelt(target: str, path: str, query: MultiMapping[str], blocking: bool) -> str | None:
    """The canonical URL, relative to the request's (it works under a path prefix), of a request spelt
    otherwise (one more cache key); None when it is answered as it is (or 400)."""
    sent_path, _, sent_query = target.partition("?")
    if sent_path == path and answered_as_sent(sent_query, blocking):
        return None
    canonical = canonical_query(query, blocking)
    if canonical is None:
        return None
    name = path.rpartition("/")[2]
    if sent_path.rpartition("/")[0] == path.rpartition("/")[0]:
        location = name
    else:  # a folder spelt another way: from the folder as sent, back up to the root of the route
        location = "../" * (sent_path.count("/") - 1) + path[1:]
    return f"{location}?{canonical}" if canonical else location


def to_canonical(request: web.Request, location: str,
                  cache_control: str = CANONICAL_CACHE_CONTROL) -> web.Response:
    """302 to the same playlist under its canonical URL, `location` relative to the request's."""
    return web.Response(status=302, headers=edge_headers({
        hdrs.LOCATION: location, hdrs.CACHE_CONTROL: cache_control}))
