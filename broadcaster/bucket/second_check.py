"""The second bucket (BACKUP_* settings) proven as the first one is: at start-up, its credentials and
bucket (`refused`: a line naming the BACKUP_ setting to fix, as a wrong first bucket stops the start);
in `hls-broadcaster check`, a probe object put there, fetched at BACKUP_PUBLIC_URL as a viewer's page
would (with an Origin: CORS), and deleted."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import quote

import aiohttp

from ..playlist import hls
from ..settings import Settings
from .store import S3Store, StoreError

# The first bucket's setting an S3 error blames (StoreError.setting), as the second bucket's.
_SETTING = {"AWS_ACCESS_KEY_ID": "BACKUP_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "BACKUP_SECRET_ACCESS_KEY",
            "AWS_BUCKET_NAME": "BACKUP_BUCKET_NAME", "S3_REGION": "BACKUP_S3_REGION"}
ORIGIN = "https://viewer.example"  # a made-up viewer page's origin, as preflight.py's


class Probed(Protocol):
    async def probe(self) -> None: ...


def blamed(err: StoreError) -> str | None:
    """The BACKUP_ setting a refusal of the second bucket names, None when it is not the settings'."""
    return _SETTING.get(err.setting) if err.setting is not None else None


async def refused(s: Settings, store: Probed) -> str | None:
    """At start-up: a line when the second bucket refuses our settings; None when it works or is merely
    unreachable (its pathway then stays behind until its uploads land)."""
    try:
        async with asyncio.timeout(s.upload_timeout):
            await store.probe()
    except StoreError as err:
        setting = blamed(err)
        if setting is not None:
            return f"the second bucket {s.backup_bucket_name!r} refused us ({err.reason}): check {setting}"
    except TimeoutError:
        pass
    return None


Line = Callable[[str, str], None]  # (ok | FAIL, text)


async def check(s: Settings, line: Line) -> None:
    """`hls-broadcaster check`'s lines for the second bucket."""
    store = S3Store(endpoint_url=s.backup_s3_endpoint_url, region=s.backup_s3_region,
                    access_key=s.backup_access_key_id, secret_key=s.backup_secret_access_key,
                    bucket=s.backup_bucket_name, max_connections=2, read_timeout=s.upload_timeout)
    token = secrets.token_hex(8)
    key = hls.bucket_key(s.r2_key_prefix, f".hls-broadcaster-check-{token}.ts")
    body = f"hls-broadcaster check {token}\n".encode()
    where = f"second bucket {s.backup_bucket_name!r} at {s.backup_s3_endpoint_url}"
    try:
        await store.start()
        if not await _step(s, line, f"{where}: put probe object {key}", lambda: store.put(
                key, body, content_type="video/mp2t", cache_control="public, max-age=60")):
            line("skip", f"{where}: public GET and delete: nothing was stored")
            return
        try:
            await _public(s, key, body, line)
        finally:
            await _step(s, line, f"{where}: delete probe object {key}", lambda: store.delete(key))
    finally:
        await store.close()


async def _step(s: Settings, line: Line, what: str, call: Callable[[], Awaitable[object]]) -> bool:
    try:
        async with asyncio.timeout(s.upload_timeout):
            await call()
    except StoreError as err:
        setting = blamed(err)
        line("FAIL", f"{what} -> {err.reason}: " + (f"check {setting}" if setting else
                                                     "check BACKUP_S3_ENDPOINT_URL and the provider's status"))
        return False
    except (TimeoutError, OSError, aiohttp.ClientError) as err:
        line("FAIL", f"{what} -> {type(err).__name__}: cannot reach BACKUP_S3_ENDPOINT_URL")
        return False
    line("ok", what)
    return True


async def _public(s: Settings, key: str, body: bytes, line: Line) -> None:
    url = f"{s.backup_public_url}/{quote(key)}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=s.upload_timeout)) as http, \
                http.get(url, headers={"Origin": ORIGIN}) as resp:
            got, status = await resp.read(), resp.status
            cors = resp.headers.get("Access-Control-Allow-Origin")
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        line("FAIL", f"second bucket: public GET {url} -> {type(err).__name__}: cannot reach BACKUP_PUBLIC_URL")
        return
    if status != 200 or got != body:
        line("FAIL", f"second bucket: public GET {url} -> HTTP {status}"
             + (", other bytes" if status == 200 else "")
             + ": BACKUP_PUBLIC_URL must serve the second bucket's objects to anyone (a public bucket policy "
             "or its CDN)")
    elif cors not in ("*", ORIGIN):
        line("FAIL", f"second bucket: public GET {url}: no Access-Control-Allow-Origin for a viewer page's "
             "origin: players cannot read its segments; allow GET from any origin in its CORS rules")
    else:
        line("ok", f"second bucket: public GET {url}: the probe object's bytes, readable by a viewer page (CORS)")
