"""`hls-broadcaster check`: proves the settings, this machine and the bucket work before the first stream:
one line per check, each failure naming the setting to fix. A probe object is stored as a segment is, read
back as the S3 API and a viewer would, and deleted. No secret is ever printed.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from ..bucket import edge_check, public_check
from ..bucket.public_check import ORIGIN as CHECK_ORIGIN, PROBE_CACHE_CONTROL, PROBE_CONTENT_TYPE
from ..bucket.store import BucketAccess, S3Store, StoreError
from ..bucket.url_mistakes import R2_API_HOST as _R2_API_HOST
from ..bucket.url_mistakes import endpoint_has_path, url_mistakes
from ..bucket.urls import S3Signer, segment_urls
from ..playlist import hls
from .machine import check_hls_dir, check_listeners, check_state_dir
from .report import PrintLine, Report
from ..settings import Settings

T = TypeVar("T")

# Error codes (S3's, or botocore/aiohttp exception names) -> (setting to fix, what to do).
_HINTS: dict[str, tuple[str, str]] = {
    "SignatureDoesNotMatch": ("AWS_SECRET_ACCESS_KEY", "the secret does not belong to this access key id"),
    "InvalidAccessKeyId": ("AWS_ACCESS_KEY_ID", "no such access key id at this endpoint"),
    "AccessDenied": ("AWS_ACCESS_KEY_ID",
                     "this token may not do that: give it Object Read & Write on this bucket"),
    "Unauthorized": ("AWS_ACCESS_KEY_ID", "the endpoint refused the credentials"),
    "NoSuchBucket": ("AWS_BUCKET_NAME", "no bucket of that name in this account; R2 does not create buckets"),
    "InvalidBucketName": ("AWS_BUCKET_NAME", "not a valid bucket name"),
    "AuthorizationHeaderMalformed": ("S3_REGION", "R2 expects 'auto'"),
    "InvalidRegionName": ("S3_REGION", "R2 expects 'auto'"),
    "NotImplemented": ("S3_ENDPOINT_URL", "the endpoint does not support this request"),
    "EndpointConnectionError": ("S3_ENDPOINT_URL", "could not connect"),
    "ConnectTimeoutError": ("S3_ENDPOINT_URL", "no connection within the time limit"),
    "ReadTimeoutError": ("S3_ENDPOINT_URL", "no answer within UPLOAD_TIMEOUT"),
    "Timeout": ("S3_ENDPOINT_URL", "no answer within UPLOAD_TIMEOUT"),
    "SSLError": ("S3_ENDPOINT_URL", "TLS failed: is it https://<ACCOUNT_ID>.r2.cloudflarestorage.com?"),
    "ClientConnectorError": ("S3_ENDPOINT_URL", "could not connect")}


def as_root_line(command: str) -> str:
    """The failure `check` run as root says: `command` is this check as the service's user would run it."""
    return ("check ran as root, which enters and reads every folder: it proves nothing about the service's "
            f"user. Run it as that user (sudo -u hls-broadcaster {command}), or name the user: check --as "
            "hls-broadcaster (Owncast's user under pm2; --as root if the service runs as root)")


async def run_checks(settings: Settings, *, print_line: PrintLine, warnings: list[str] | None = None,
                     as_root: str | None = None, env_file: Path | None = None, r2_dev: str | None = None) -> bool:
    """Run every check, printing one line each; True when none failed (warnings do not count).
    `as_root`: run by root not told the service's user (a failure). `r2_dev`: the bucket's r2.dev URL,
    tried as a door around a private stream's edge."""
    report = Report(print_line, [s for s in settings.secrets() if s])
    for line in warnings or []:
        report.warn(line)
    if as_root is not None:
        report.fail(as_root_line(as_root))
    bucket_named = _check_settings(settings, report)
    if as_root is not None:
        report.skip(f"HLS_DIR {settings.hls_dir} and STATE_DIR {settings.state_dir}: not judged as root")
    else:
        check_hls_dir(settings, report)
        check_state_dir(settings, report, env_file)
    check_listeners(settings, report)
    if bucket_named:
        async with S3Store(BucketAccess.of(settings.first_bucket), max_connections=2,
                           read_timeout=settings.upload_timeout) as store:
            await _check_bucket(settings, store, report, r2_dev)
    else:
        report.skip("the bucket: S3_ENDPOINT_URL names a path, which the S3 API would take for the bucket's "
                    "(fix it first; R2_PUBLIC_URL is judged then)")
    for bucket in settings.extra_buckets:
        await public_check.check(bucket, settings.r2_key_prefix, settings.upload_timeout, report.line)
    _check_cdn_terms(settings, report)
    if report.failures:
        report.note(f"{report.failures} check(s) failed: fix what is named above and run it again.")
    else:
        report.note("all checks passed: the service can store segments and viewers can fetch them.")
    return report.failures == 0


def _check_cdn_terms(settings: Settings, report: Report) -> None:
    """The VM's pathway through the tunnel: said each time, not refused (an emergency chosen knowingly)."""
    if hls.VM_PATHWAY in settings.pathways and not settings.vm_pathway_url:
        report.warn("PATHWAYS names vm without VM_PATHWAY_URL: while the bucket fails the VM's segments go to "
                    "viewers through Cloudflare's CDN, which Cloudflare's self-serve terms allow only for video "
                    "hosted on R2, Stream or Images (it may limit the zone). Prefer a second bucket at another "
                    "provider (PATHWAYS=bucket,backup) or the VM's pathway on a hostname Cloudflare does not "
                    "proxy (VM_PATHWAY_URL); docs/steering.md#cloudflares-terms")


def _check_settings(s: Settings, report: Report) -> bool:
    """Mistakes the settings loader cannot see; False when S3_ENDPOINT_URL has a path."""
    first = s.first_bucket
    endpoint_host = urlsplit(first.endpoint_url).hostname or ""
    public_host = urlsplit(first.public_url).hostname or ""
    presigned = s.segment_urls == "presigned"
    problems = url_mistakes(s)  # `run` refuses the same (cli.py)
    for problem in problems:
        report.fail(problem)
    if not problems:
        prefix = f"{s.r2_key_prefix}/" if s.r2_key_prefix else "(the bucket's top level)"
        urls = (f"presigned URLs (expire after {s.presign_expiry} s)" if presigned
                else f"public URL {first.public_url}")
        report.ok(f"settings: bucket {first.bucket!r} at {first.endpoint_url} (region {first.region}), keys "
                  f"under {prefix}, {urls}, access key id {_shorten(first.access_key_id)}")
    if presigned:  # viewers fetch presigned segments from the S3 API host itself
        if first.endpoint_url.startswith("http://") and not _loopback(endpoint_host):
            report.warn("S3_ENDPOINT_URL is http://: browsers block presigned segments on an https:// viewer "
                        "page")
        if first.public_url:
            report.warn("R2_PUBLIC_URL is set but not used: with SEGMENT_URLS=presigned viewers fetch "
                        "segments from S3_ENDPOINT_URL")
    else:
        if public_host.endswith(".r2.dev"):
            report.warn("R2_PUBLIC_URL is an r2.dev address: rate-limited (429s) and never cached, not for "
                        "production; connect a custom domain to the bucket and use it (deploy/r2-setup.md, "
                        "step 2)")
        if first.public_url.startswith("http://") and not _loopback(public_host):
            report.warn("R2_PUBLIC_URL is http://: browsers block its segments on an https:// viewer page")
    if endpoint_host.endswith(_R2_API_HOST) and first.region not in ("auto", "us-east-1"):
        report.warn(f"S3_REGION is {first.region!r}: R2 expects 'auto'")
    if _loopback(s.host) and not s.trust_cf_connecting_ip and not s.forwarded_allow_ips:
        report.warn(
            f"HOST is {s.host} (cloudflared on this machine?) and TRUST_CF_CONNECTING_IP is false: every "
            "viewer comes from loopback as one client, so one client can fill the viewer count and the held "
            "requests; set TRUST_CF_CONNECTING_IP=true behind the tunnel (deploy/env.example), or name a "
            "reverse proxy on this machine in FORWARDED_ALLOW_IPS=127.0.0.1")
    return not endpoint_has_path(first.endpoint_url)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _shorten(value: str) -> str:
    return value if len(value) <= 8 else f"{value[:4]}…{value[-2:]}"


async def _check_bucket(s: Settings, store: S3Store, report: Report, r2_dev: str | None = None) -> None:
    key, body = public_check.probe_object(s.r2_key_prefix, "check")

    stored, _ = await _store_step(
        s, report, f"put probe object {key}",
        lambda: store.put(key, body, content_type=PROBE_CONTENT_TYPE, cache_control=PROBE_CACHE_CONTROL))
    if not stored:
        report.skip(f"head, {s.segment_urls} GET, CORS and delete: nothing was stored")
        return
    try:
        found, head = await _store_step(
            s, report, f"head probe object {key}",
            lambda: store.client.head_object(Bucket=s.first_bucket.bucket, Key=key))
        if found:
            _check_metadata(head, len(body), report)
        await _store_step(s, report, "head bucket (the service's start-up and health probe)", store.probe)
        if s.segment_urls == "presigned":
            await check_presigned(s, key, body, report)
        elif s.private:  # a stranger refused, a playlist's URI answered (bucket/edge_check.py)
            probe = edge_check.Probe(segment_urls(s).segment(key), key, body, r2_dev, s.upload_timeout)
            await edge_check.check(probe, report.line)
        else:
            await check_public(s, key, body, report)
    finally:
        await _store_step(
            s, report, f"delete probe object {key}", lambda: store.delete(key),
            also="the service deletes each segment after its window, so the token must be allowed to delete")


async def _store_step(
    s: Settings, report: Report, what: str, call: Callable[[], Awaitable[T]], *, also: str = ""
) -> tuple[bool, T | None]:
    """One bucket call under UPLOAD_TIMEOUT; prints ok, or FAIL with the setting to fix."""
    try:
        async with asyncio.timeout(s.upload_timeout):
            result = await call()
    except StoreError as err:
        reason = err.reason  # a setting's mistake has its hint (_HINTS)
    except ClientError as err:  # raw client calls (head_object) raise botocore's own errors
        reason = _client_error_code(err)
    except (BotoCoreError, OSError, aiohttp.ClientError) as err:
        reason = type(err).__name__
    except TimeoutError:
        reason = "Timeout"
    else:
        report.ok(what)
        return True, result
    report.fail(f"{what} -> {reason}: {_hint(reason)}" + (f"; {also}" if also else ""))
    return False, None


def _client_error_code(err: ClientError) -> str:
    code = str(err.response.get("Error", {}).get("Code") or "")
    status = str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    # HEAD answers have no body, so their errors come back as bare status numbers.
    return {"403": "AccessDenied", "404": "NoSuchKey"}.get(code or status, code or status or "error")


def _hint(reason: str) -> str:
    if reason in _HINTS:
        name, advice = _HINTS[reason]
        return f"check {name} ({advice})"
    if reason == "NoSuchKey":
        return "the object just stored is not there: is S3_ENDPOINT_URL the bucket's real endpoint?"
    return "check S3_ENDPOINT_URL and the network (see the error name above)"


def _check_metadata(head: Any, size: int, report: Report) -> None:
    """The headers viewers' players and the CDN rely on must be stored with the object."""
    stored_type = head.get("ContentType")
    stored_cache = head.get("CacheControl")
    if head.get("ContentLength") != size:
        report.fail(f"stored size {head.get('ContentLength')} bytes instead of {size}: check S3_ENDPOINT_URL")
    if stored_type != PROBE_CONTENT_TYPE or stored_cache != PROBE_CACHE_CONTROL:
        report.warn(
            f"the bucket kept Content-Type {stored_type!r} and Cache-Control {stored_cache!r} instead of "
            f"{PROBE_CONTENT_TYPE!r} and {PROBE_CACHE_CONTROL!r}: segments would lose their caching headers")

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
