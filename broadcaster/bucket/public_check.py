"""`hls-broadcaster check` of a bucket other than the first (a probe object put, fetched at its public URL
with an Origin, deleted), and the start's own look (`listed_answers`): is a stored key where URLs look?"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import quote

import aiohttp

from .. import __version__
from ..settings import BucketSettings
from ..playlist import hls
from .store import BucketAccess, S3Store, within

ORIGIN = "https://viewer.example"  # a made-up viewer page's origin, which CORS must allow
PROBE_CONTENT_TYPE = "video/mp2t"  # stored as a segment is: its GET meets a segment's Cache Rule
PROBE_CACHE_CONTROL = "public, max-age=60"  # a minute: the probe is deleted at once
# The start's GET says what it is: a bucket's or CDN's logs tell it from viewers.
START_HEADERS = {"User-Agent": f"hls-broadcaster/{__version__} (start check)"}

Line = Callable[[str, str], None]  # (ok | warn | FAIL | skip, text): preflight's Report.line
MAY_LAND = frozenset({"Timeout", "ReadTimeoutError"})  # a put failed so was not answered: it may land


def probe_object(key_prefix: str, word: str) -> tuple[str, bytes]:
    """A new probe object's key (a dotfile: never one of Owncast's) and its body, saying who put it."""
    token = secrets.token_hex(8)
    return (hls.bucket_key(key_prefix, f".hls-broadcaster-check-{token}.ts"),
            f"hls-broadcaster {word} {token}\n".encode())


async def check(bucket: BucketSettings, key_prefix: str, timeout: float, line: Line) -> None:
    """`hls-broadcaster check`'s lines for one bucket other than the first."""
    key, body = probe_object(key_prefix, "check")
    where = f"the {bucket.pathway} pathway's bucket {bucket.bucket!r} at {bucket.endpoint_url}"
    async with S3Store(BucketAccess.of(bucket), max_connections=2, read_timeout=timeout) as store:
        if not await _step(bucket, timeout, line, f"{where}: put probe object {key}", store.put(
                key, body, content_type=PROBE_CONTENT_TYPE, cache_control=PROBE_CACHE_CONTROL)):
            line("skip", f"{where}: public GET and delete: nothing was stored")
            return
        try:
            await _public(bucket, timeout, key, body, line)
        finally:
            await _step(bucket, timeout, line, f"{where}: delete probe object {key}", store.delete(key))


async def _step(bucket: BucketSettings, timeout: float, line: Line, what: str,
                call: Awaitable[object]) -> bool:
    if (err := await within(call, timeout)) is None:
        line("ok", what)
        return True
    setting = bucket.setting(err.setting or "S3_ENDPOINT_URL")  # a wrong setting, or the bucket unreachable
    line("FAIL", f"{what} -> {err.reason}: check {setting}" + ("" if err.setting else
                                                               " and the provider's status"))
    return False


async def _public(bucket: BucketSettings, timeout: float, key: str, body: bytes, line: Line) -> None:
    url = f"{bucket.public_url}/{quote(key)}"
    setting = bucket.setting("R2_PUBLIC_URL")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, \
                http.get(url, headers={"Origin": ORIGIN}) as resp:
            got, status = await resp.read(), resp.status
            cors = resp.headers.get("Access-Control-Allow-Origin")
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        line("FAIL", f"{bucket.pathway} pathway: public GET {url} -> {type(err).__name__}: cannot reach {setting}")
        return
    if status != 200 or got != body:
        line("FAIL", f"{bucket.pathway} pathway: public GET {url} -> HTTP {status}"
             + (", other bytes" if status == 200 else "")
             + f": {setting} must serve the bucket's objects to anyone (a public bucket policy or its CDN)")
    elif cors not in ("*", ORIGIN):
        line("FAIL", f"{bucket.pathway} pathway: public GET {url}: no Access-Control-Allow-Origin for a viewer "
             "page's origin: players cannot read its segments; allow GET from any origin in its CORS rules")
    else:
        line("ok", f"{bucket.pathway} pathway: public GET {url}: the probe object's bytes, readable by a viewer "
             "page (CORS)")


class Stored(Protocol):
    """The bucket's calls `listed_answers` makes (bucket/store_thread.py's StoreThread)."""

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None: ...

    async def delete(self, key: str) -> None: ...


async def listed_answers(store: Stored, url_of: Callable[[str], str], key_prefix: str,
                         timeout: float, left: Callable[[str], None]) -> str | None:
    """A probe object stored as a segment is, fetched at `url_of(key)` (the URL a playlist would list) and
    deleted: what the GET found when not its bytes ("HTTP 404", "other bytes", why no answer), else None
    (also when the bucket did not take it). `left(key)`: told of an object that may be left in the bucket."""
    key, body = probe_object(key_prefix, "start")
    if (refused := await within(store.put(key, body, content_type=PROBE_CONTENT_TYPE,
                                          cache_control=PROBE_CACHE_CONTROL), timeout)) is not None:
        if refused.reason in MAY_LAND:
            left(key)
        return None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, \
                http.get(url_of(key), headers=START_HEADERS) as resp:
            got, status = await resp.read(), resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        return f"no answer: {type(err).__name__}"
    finally:
        if await within(store.delete(key), timeout) is not None:
            left(key)
    return f"HTTP {status}" if status != 200 else None if got == body else "other bytes"
