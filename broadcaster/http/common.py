"""What every response shares: the error answers, `guarded`, the catch-all route, the connection log.
No middleware on purpose (each layer costs every playlist request a coroutine: bench/serve.py): handlers
add EDGE_HEADERS and catch errors themselves (`guarded`), the catch-all route answers 404/405."""

from __future__ import annotations

import functools
import logging
import re

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from ..edge import EDGE_HEADERS, NO_STORE, edge_headers
from ..playlist import hls

log = logging.getLogger(__name__)

# The viewer's files may be replaced in place: revalidate each time (a cheap 304 by ETag).
REVALIDATE = "no-cache"
CLIENT_MAX_SIZE = 1024  # no route takes a request body

class ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's connection logger, a request it cannot parse (4xx) one debug line, not an ERROR."""

    def exception(self, msg: object, *args: object, exc_info: object = True, **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError) and 400 <= exc_info.code < 500:
            self.logger.debug("bad request (%d): %r", exc_info.code, exc_info.message)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)  # type: ignore[arg-type]


CONNECTION_LOG = ConnectionLog(logging.getLogger("aiohttp.server"), {})


_PREFLIGHT_METHODS = "GET, HEAD, OPTIONS"
_PREFLIGHT_SAFE_HEADERS = "Cache-Control, If-Modified-Since, If-None-Match, Range"
_PREFLIGHT_MAX_AGE = "86400"
_HEADER_LIST = re.compile(r"[A-Za-z0-9-]+(?:\s*,\s*[A-Za-z0-9-]+)*")


def guarded(handler: Handler) -> Handler:
    """A bug in one request: one log line and a 500 with EDGE_HEADERS, not aiohttp's traceback."""

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:  # aiohttp's way to answer early: an answer, not a bug
            exc.headers.update(EDGE_HEADERS)
            raise
        except Exception as exc:  # noqa: BLE001 (logged; CancelledError is a BaseException and passes)
            return internal_error(request, exc)

    return guard


def internal_error(request: web.Request, exc: Exception) -> web.Response:
    # One line, without a traceback: the raw (still escaped) path and the repr keep newlines out of the log.
    log.error("%s %s failed: %r", request.method, request.raw_path, exc, exc_info=log.isEnabledFor(logging.DEBUG))
    return text_answer(500, "internal server error\n", NO_STORE)


def text_answer(status: int, text: str, cache_control: str = hls.UNREADY_CACHE_CONTROL) -> web.Response:
    """A line of text with EDGE_HEADERS; by default kept by no cache (an error may be gone next time)."""
    return web.Response(status=status, text=text, headers=edge_headers({hdrs.CACHE_CONTROL: cache_control}))


@guarded
async def elsewhere(request: web.Request) -> web.Response:
    """What no route takes: a preflight (answered for every path), 404, or 405 where GET would work."""
    if request.method == hdrs.METH_OPTIONS:
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
        # Echo what the browser asks for when it is a plain list of header names; never echo junk.
        allowed = asked if len(asked) <= 1000 and _HEADER_LIST.fullmatch(asked) else _PREFLIGHT_SAFE_HEADERS
        return web.Response(status=204, headers=edge_headers({  # Vary: the answer depends on what is asked
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: _PREFLIGHT_METHODS, hdrs.ACCESS_CONTROL_ALLOW_HEADERS: allowed,
            hdrs.ACCESS_CONTROL_MAX_AGE: _PREFLIGHT_MAX_AGE, hdrs.VARY: hdrs.ACCESS_CONTROL_REQUEST_HEADERS}))
    if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD):
        match = await request.app.router.resolve(request.clone(method=hdrs.METH_GET))
        if match.handler is not elsewhere:  # a GET route has this path: every route is GET-only
            return web.Response(status=405, text="method not allowed\n",
                                headers=edge_headers({hdrs.ALLOW: "GET,HEAD"}))
    return text_answer(404, "not found\n")

