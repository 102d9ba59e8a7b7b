"""`hls-broadcaster check` as a viewer sees the bucket: the probe object fetched at its public or
presigned URL, then with an Origin and as a CORS preflight."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from ..bucket.public_check import ORIGIN as CHECK_ORIGIN, PROBE_CACHE_CONTROL
from ..bucket.store import BucketAccess
from ..bucket.urls import S3Signer
from .report import Report
from ..settings import Settings

# Cloudflare's CF-Cache-Status for an answer its cache took or could take; DYNAMIC and BYPASS are not.
_CACHED = {"HIT", "MISS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED"}

_PUBLIC_HINTS = {
    401: "is public access enabled on the bucket / the custom domain connected? (R2_PUBLIC_URL)",
    403: "is public access enabled on the bucket / the custom domain connected? (R2_PUBLIC_URL)",
    404: "R2_PUBLIC_URL does not serve this bucket: use this bucket's custom domain or r2.dev URL, "
    "with no path after it",
    429: "rate limited: r2.dev URLs are for development; connect a custom domain and use it as R2_PUBLIC_URL"}
_NOT_SERVED = "the public URL should serve the bucket's objects: check R2_PUBLIC_URL"

_PRESIGNED_HINTS = {
    "AccessDenied": "the token may not read objects: give it Object Read & Write on this bucket (AWS_ACCESS_KEY_ID)",
    "RequestTimeTooSkewed": "this machine's clock is off: presigned URLs carry the time they were signed "
    "(run an NTP client)",
    "SignatureDoesNotMatch": "the endpoint does not accept presigned URLs as signed here: S3_ENDPOINT_URL must "
    "be the S3 API host (https://<ACCOUNT_ID>.r2.cloudflarestorage.com), S3_REGION 'auto'",
}


async def check_public(s: Settings, key: str, body: bytes, report: Report) -> None:
    url = f"{s.first_bucket.public_url}/{quote(key)}"
    timeout = aiohttp.ClientTimeout(total=s.upload_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            async with http.get(url) as resp:
                got = await resp.read()
                status, cache_control = resp.status, resp.headers.get("Cache-Control")
                cf_cache_status = resp.headers.get("CF-Cache-Status")
                by_cloudflare = "CF-Ray" in resp.headers or resp.headers.get("Server", "").lower() == "cloudflare"
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            report.fail(f"public GET {url} -> {type(err).__name__}: cannot reach R2_PUBLIC_URL ({err})")
            report.skip("CORS: the public URL does not answer")
            return
        if status != 200 or got != body:
            why = (f"{status}: {_PUBLIC_HINTS.get(status, _NOT_SERVED)}" if status != 200 else
                   f"200 but other bytes ({len(got)} instead of {len(body)}): R2_PUBLIC_URL serves something "
                   "else (another bucket, a login page?)")
            report.fail(f"public GET {url} -> {why}")
            report.skip("CORS: the public URL does not serve the object")
            return
        report.ok(f"public GET {url} -> 200, same bytes")
        _check_cacheable(cache_control, cf_cache_status, by_cloudflare, report)
        await _check_cors(http, url, report)


def _check_cacheable(cache_control: str | None, cf_cache_status: str | None, by_cloudflare: bool,
                     report: Report) -> None:
    """A segment fetched through R2_PUBLIC_URL must come with an answer a cache keeps."""
    rule = "add the Cache Rule for the bucket's custom domain (cloudflared.yml.example's comments)"
    if cache_control != PROBE_CACHE_CONTROL:
        report.warn(
            f"the public URL answered Cache-Control {cache_control!r}, not the object's {PROBE_CACHE_CONTROL!r}: "
            "segments would lose theirs; set the zone's Browser Cache TTL to 'Respect Existing Headers'"
        )
    elif by_cloudflare and (cf_cache_status or "").upper() not in _CACHED:
        report.warn(
            f"a segment fetched through R2_PUBLIC_URL is not cached (CF-Cache-Status: {cf_cache_status or 'none'}): "
            f"every viewer's GET goes to the bucket; {rule}"
        )
    elif by_cloudflare:
        report.ok(f"a segment fetched through R2_PUBLIC_URL is cacheable (CF-Cache-Status: {cf_cache_status})")


async def check_presigned(s: Settings, key: str, body: bytes, report: Report) -> None:
    """GET through a presigned URL, as a viewer's player does; and an unsigned GET refused."""
    url = S3Signer(BucketAccess.of(s.first_bucket))(key, s.presign_expiry)
    base, _, signature = url.partition("?")
    report.secrets.append(signature)  # it opens the object: never printed, even inside an error
    shown = f"{base}?X-Amz-…"
    timeout = aiohttp.ClientTimeout(total=s.upload_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            status, got = await _get(http, url)
            unsigned, _ = await _get(http, base)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            report.fail(f"presigned GET {shown} -> {type(err).__name__}: cannot reach S3_ENDPOINT_URL ({err})")
            report.skip("CORS: the presigned URL does not answer")
            return
        if status != 200 or got != body:
            code = _xml_code(got) if status != 200 else "other bytes"
            hint = _PRESIGNED_HINTS.get(code, "viewers could not fetch segments: check S3_ENDPOINT_URL")
            report.fail(f"presigned GET {shown} -> {status} {code}: {hint}")
            report.skip("CORS: the presigned URL does not serve the object")
            return
        if unsigned == 200:
            report.warn(
                f"presigned GET {shown} -> 200, same bytes; but an unsigned GET answers 200 too: the bucket "
                "is public, so anyone can read segments without a signature")
        else:
            report.ok(f"presigned GET {shown} -> 200, same bytes; the bucket is private (an unsigned GET -> {unsigned})")
        await _check_cors(http, url, report, shown=shown)


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with http.get(url) as resp:
        return resp.status, await resp.read()


def _xml_code(body: bytes) -> str:
    """The <Code> of an S3 error body, or '' when there is none."""
    start, end = body.find(b"<Code>"), body.find(b"</Code>")
    return body[start + 6:end].decode(errors="replace") if 0 <= start < end else ""


async def _check_cors(http: aiohttp.ClientSession, url: str, report: Report, *, shown: str = "") -> None:
    cors_hint = ("apply deploy/r2-cors.json to the bucket (deploy/r2-setup.md); changes take up to 30 s. "
                 "Without it players on another site fail with status 0")
    origin = {"Origin": CHECK_ORIGIN}
    try:
        async with http.get(url, headers=origin) as resp:
            await resp.read()
            allowed = resp.headers.get("Access-Control-Allow-Origin")
        if allowed in ("*", CHECK_ORIGIN):
            report.ok(f"CORS GET with Origin {CHECK_ORIGIN} -> Access-Control-Allow-Origin {allowed}")
        else:
            report.fail(
                f"CORS GET with Origin {CHECK_ORIGIN} -> Access-Control-Allow-Origin {allowed!r}: {cors_hint}"
            )
        preflight = {**origin, "Access-Control-Request-Method": "GET"}
        async with http.options(url, headers=preflight) as resp:
            await resp.read()
            status = resp.status
            allowed = resp.headers.get("Access-Control-Allow-Origin")
            methods = resp.headers.get("Access-Control-Allow-Methods", "")
        if status in (200, 204) and allowed in ("*", CHECK_ORIGIN) and "GET" in methods.upper():
            report.ok(f"CORS preflight OPTIONS -> {status}, methods {methods}")
        else:
            report.fail(f"CORS preflight OPTIONS -> {status}, Access-Control-Allow-Origin {allowed!r}, "
                        f"methods {methods!r}: {cors_hint}")
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        report.fail(f"CORS requests to {shown or url} -> {type(err).__name__}: {err}")
