"""`hls-broadcaster check`: proves the settings, this machine and the bucket work before the first stream.

One line per check, "ok   ...", "warn ...", "FAIL ..." or "skip ...", and for each failure the
setting to fix. On this machine, as the user it runs as: that Owncast's folder can be entered, listed,
read and watched (HLS_DIR), that STATE_DIR is or can be made writable, and that HOST:PORT (and
METRICS_LISTEN) can be bound. Then it stores a small probe object under R2_KEY_PREFIX, as a segment is
stored, reads it back with the S3 API and as a viewer would (with and without CORS): through
R2_PUBLIC_URL, or with SEGMENT_URLS=presigned through a presigned URL, then deletes it: the same calls
the service makes for every segment. The secret is never printed, nor a presigned URL's signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from .bucket import edge_check, public_check
from .bucket.store import S3Store, StoreError
from . import files, fixes, state_dir
from .bucket.url_mistakes import R2_API_HOST as _R2_API_HOST
from .bucket.url_mistakes import endpoint_has_path, url_mistakes
from .bucket.urls import S3Signer, segment_urls
from .playlist import hls
from .settings import Address, Settings
from .source import access

PrintLine = Callable[[str], None]
T = TypeVar("T")

# A made-up viewer origin: the bucket's CORS policy must allow any origin (or the viewer's own).
CHECK_ORIGIN = "https://viewer.example"
# Stored as a segment is (a .ts name, its type, a cacheable answer), so the viewer's GET through
# R2_PUBLIC_URL meets the Cache Rule a segment meets; cacheable for a minute only, the probe being
# deleted at once (segments say a year: they never change).
PROBE_CONTENT_TYPE = "video/mp2t"
PROBE_CACHE_CONTROL = "public, max-age=60"
# Cloudflare's CF-Cache-Status for an answer its cache took or could take; DYNAMIC and BYPASS are not.
_CACHED = {"HIT", "MISS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED"}
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

# Error codes (S3's, or botocore/aiohttp exception names) -> (setting to fix, what to do).
_HINTS: dict[str, tuple[str, str]] = {
    "SignatureDoesNotMatch": ("AWS_SECRET_ACCESS_KEY", "the secret does not belong to this access key id"),
    "InvalidAccessKeyId": ("AWS_ACCESS_KEY_ID", "no such access key id at this endpoint"),
    "AccessDenied": (
        "AWS_ACCESS_KEY_ID",
        "this token may not do that: give it Object Read & Write on this bucket",
    ),
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
    "ClientConnectorError": ("S3_ENDPOINT_URL", "could not connect"),
}

_PUBLIC_HINTS = {
    401: "is public access enabled on the bucket / the custom domain connected? (R2_PUBLIC_URL)",
    403: "is public access enabled on the bucket / the custom domain connected? (R2_PUBLIC_URL)",
    404: "R2_PUBLIC_URL does not serve this bucket: use this bucket's custom domain or r2.dev URL, "
    "with no path after it",
    429: "rate limited: r2.dev URLs are for development; connect a custom domain and use it as R2_PUBLIC_URL",
}

_PRESIGNED_HINTS = {
    "AccessDenied": "the token may not read objects: give it Object Read & Write on this bucket (AWS_ACCESS_KEY_ID)",
    "RequestTimeTooSkewed": "this machine's clock is off: presigned URLs carry the time they were signed "
    "(run an NTP client)",
    "SignatureDoesNotMatch": "the endpoint does not accept presigned URLs as signed here: S3_ENDPOINT_URL must "
    "be the S3 API host (https://<ACCOUNT_ID>.r2.cloudflarestorage.com), S3_REGION 'auto'",
}


@dataclass
class _Report:
    print_line: PrintLine
    secrets: list[str]
    failures: int = 0

    def line(self, status: str, text: str) -> None:
        self.note(f"{status:<4} {text}")

    def note(self, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        self.print_line(text)

    def ok(self, text: str) -> None:
        self.line("ok", text)

    def warn(self, text: str) -> None:
        self.line("warn", text)

    def skip(self, text: str) -> None:
        self.line("skip", text)

    def fail(self, text: str) -> None:
        self.failures += 1
        self.line("FAIL", text)


# `check` as root, not told the service's user: root enters and reads every folder, so what it finds of
# Owncast's folder and STATE_DIR says nothing of what the service's user may.
def as_root_line(command: str) -> str:
    """The failure `check` run as root says: `command`, this very check as the service's user would run it
    (fixes.this_check: the program by its full path, which is not on that user's PATH, and the env file given)."""
    return ("check ran as root, which enters and reads every folder: it proves nothing about the service's "
            f"user. Run it as that user (sudo -u hls-broadcaster {command}), or name the user: check --as "
            "hls-broadcaster (Owncast's user under pm2; --as root if the service runs as root)")


async def run_checks(settings: Settings, *, print_line: PrintLine, warnings: list[str] | None = None,
                     as_root: str | None = None, env_file: Path | None = None, r2_dev: str | None = None) -> bool:
    """Run every check, printing one line each; True when none failed (warnings do not count).
    `warnings`: found before the settings loaded (keys that look like a setting's name). `as_root`: run
    by root not told the service's user (the check as that user would run it): a failure, and the user's
    folders are not judged. `env_file`: the settings' file, to tell this service from another one
    holding STATE_DIR. `r2_dev`: the bucket's r2.dev URL, tried as a door around a private stream's edge."""
    report = _Report(print_line, [s for s in settings.secrets() if s])
    for line in warnings or []:
        report.warn(line)
    if as_root is not None:
        report.fail(as_root_line(as_root))
    bucket_named = _check_settings(settings, report)
    if as_root is not None:
        report.skip(f"HLS_DIR {settings.hls_dir} and STATE_DIR {settings.state_dir}: not judged as root")
    else:
        _check_hls_dir(settings, report)
        _check_state_dir(settings, report, env_file)
    _check_listeners(settings, report)
    if bucket_named:
        await _check_first_bucket(settings, report, r2_dev)
    else:
        report.skip("the bucket: S3_ENDPOINT_URL names a path, which the S3 API would take for the bucket's "
                    "(fix it first; R2_PUBLIC_URL is judged then)")
    said = {"ok": report.ok, "FAIL": report.fail, "skip": report.skip}
    for bucket in settings.extra_buckets:
        await public_check.check(bucket, settings.r2_key_prefix, settings.upload_timeout,
                                 lambda status, text: said[status](text))
    _check_cdn_terms(settings, report)
    if report.failures:
        report.note(f"{report.failures} check(s) failed: fix what is named above and run it again.")
    else:
        report.note("all checks passed: the service can store segments and viewers can fetch them.")
    return report.failures == 0


async def _check_first_bucket(settings: Settings, report: _Report, r2_dev: str | None) -> None:
    store = S3Store(
        endpoint_url=settings.first_bucket.endpoint_url,
        region=settings.first_bucket.region,
        access_key=settings.first_bucket.access_key_id,
        secret_key=settings.first_bucket.secret_access_key,
        bucket=settings.first_bucket.bucket,
        max_connections=2,
        read_timeout=settings.upload_timeout,
    )
    try:
        await store.start()
        await _check_bucket(settings, store, report, r2_dev)
    finally:
        await store.close()


def _check_cdn_terms(settings: Settings, report: _Report) -> None:
    """The VM's pathway through the tunnel: video not hosted on R2 through Cloudflare's CDN, which its
    self-serve terms do not allow (docs/steering.md#cloudflares-terms). Said each time, not refused: a
    bounded emergency the operator may choose knowingly."""
    if hls.VM_PATHWAY in settings.pathways and not settings.vm_pathway_url:
        report.warn("PATHWAYS names vm without VM_PATHWAY_URL: while the bucket fails the VM's segments go to "
                    "viewers through Cloudflare's CDN, which Cloudflare's self-serve terms allow only for video "
                    "hosted on R2, Stream or Images (it may limit the zone). Prefer a second bucket at another "
                    "provider (PATHWAYS=bucket,backup) or the VM's pathway on a hostname Cloudflare does not "
                    "proxy (VM_PATHWAY_URL); docs/steering.md#cloudflares-terms")


# -- this machine -----------------------------------------------------------------------------------


def _check_hls_dir(s: Settings, report: _Report) -> None:
    """As the user this runs as (run it as the service's user: deploy/hls-broadcaster.service)."""
    watch = s.hls_watch == "auto"
    found = access.problems(s.hls_dir, watch=watch)
    for problem in found:
        report.fail(problem)
    if not found:
        try:
            variants = sum(1 for p in s.hls_dir.iterdir() if p.name.isdigit() and p.is_dir())
        except OSError:
            variants = 0  # Owncast replacing it just now
        report.ok(f"HLS_DIR {s.hls_dir}: user {files.user_name()} can enter, list and read it and its "
                  f"{variants} variant folder(s)" + (", and watch them (inotify)" if watch else ""))


def _check_state_dir(s: Settings, report: _Report, env_file: Path | None = None) -> None:
    """A folder there `run` refuses failed as the settings loaded; here, with `run`'s own lines, a missing
    one it could not make (but the unit's, which systemd makes) and one another service holds."""
    user, refused = files.user_name(), state_dir.refusal(s.state_dir)
    if (shared := state_dir.held_by_another(s.state_dir, env_file)) is not None:
        report.fail(shared)
    elif s.state_dir.is_dir():
        report.ok(f"STATE_DIR {s.state_dir}: writable by user {user}")
    elif refused is None:
        report.ok(f"STATE_DIR {s.state_dir} does not exist yet: `run` makes it (user {user} may)")
    elif state_dir.systemd_makes(s.state_dir):
        report.warn(f"STATE_DIR {s.state_dir} does not exist yet and user {user} cannot make it: the shipped "
                    "unit's StateDirectory= makes it at the first start (deploy/hls-broadcaster.service); "
                    f"without systemd make it, {fixes.own_folder(s.state_dir)}")
    else:
        report.fail(f"STATE_DIR {s.state_dir}: {refused}")  # as `run` says it


def _check_listeners(s: Settings, report: _Report) -> None:
    """Bind HOST:PORT (and METRICS_LISTEN) as the service will, and let go at once."""
    running = state_dir.holder(s.state_dir)
    wanted = [(Address(s.host, s.port), "HOST/PORT")]
    if isinstance(s.metrics_listen, Address):
        wanted.append((s.metrics_listen, "METRICS_LISTEN"))
    for where, setting in wanted:
        if where.port == 0:
            report.ok(f"{setting} {where}: port 0, the service picks a free one (and logs it)")
        elif running is not None:
            report.skip(f"{setting} {where}: hls-broadcaster runs with this STATE_DIR (pid {running}) and holds it")
        else:
            problem = _bind(where)
            if problem is None:
                report.ok(f"{setting} {where}: free, and this user may listen on it")
            else:
                report.fail(f"{setting} {where}: {problem}")


def _bind(where: Address) -> str | None:
    try:
        infos = socket.getaddrinfo(where.host, where.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as err:
        return f"cannot resolve {where.host} ({getattr(err, 'strerror', None) or err})"
    for family, kind, proto, _name, address in infos:
        with contextlib.closing(socket.socket(family, kind, proto)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds it
            try:
                sock.bind(address)
                sock.listen(1)
            except OSError as err:
                return _bind_hint(err, where)
    return None


# Grafana's default port is also PORT's: on a VM that runs the dashboard too, the likeliest clash.
GRAFANA_PORT = 3000


def _bind_hint(err: OSError, where: Address) -> str:
    if err.errno == errno.EADDRINUSE:
        grafana = " (Grafana's default port is 3000 too)" if where.port == GRAFANA_PORT else ""
        return (f"already in use by another program{grafana} (`ss -ltnp 'sport = :{where.port}'` names it): stop "
                "it or choose another port")
    if err.errno == errno.EACCES:
        return "this user may not listen below port 1024: use a port above it (the tunnel does not care)"
    if err.errno == errno.EADDRNOTAVAIL:
        return f"{where.host} is not an address of this machine"
    return f"cannot listen ({err.strerror or err})"


# -- the settings ---------------------------------------------------------------------------------


def _check_settings(s: Settings, report: _Report) -> bool:
    """Mistakes the settings loader cannot see: it checks each value, not what R2 makes of them. False
    when S3_ENDPOINT_URL has a path: the bucket's checks would then fail for it, blaming other settings."""
    endpoint = urlsplit(s.first_bucket.endpoint_url)
    public_host = urlsplit(s.first_bucket.public_url).hostname or ""
    problems = url_mistakes(s)  # `run` refuses the same (cli.py)
    for problem in problems:
        report.fail(problem)
    if not problems:
        prefix = f"{s.r2_key_prefix}/" if s.r2_key_prefix else "(the bucket's top level)"
        report.ok(
            f"settings: bucket {s.first_bucket.bucket!r} at {s.first_bucket.endpoint_url} (region {s.first_bucket.region}), keys "
            f"under {prefix}, {_segment_urls(s)}, access key id {_shorten(s.first_bucket.access_key_id)}"
        )
    if _presigned(s):
        _check_presigned_settings(s, endpoint.hostname or "", report)
    else:
        _check_public_settings(s, public_host, report)
    if (endpoint.hostname or "").endswith(_R2_API_HOST) and s.first_bucket.region not in ("auto", "us-east-1"):
        report.warn(f"S3_REGION is {s.first_bucket.region!r}: R2 expects 'auto'")
    if _loopback(s.host) and not s.trust_cf_connecting_ip and not s.forwarded_allow_ips:
        report.warn(
            f"HOST is {s.host} (cloudflared on this machine?) and TRUST_CF_CONNECTING_IP is false: every "
            "viewer comes from loopback as one client, so one client can fill the viewer count and the held "
            "requests; set TRUST_CF_CONNECTING_IP=true behind the tunnel (deploy/env.example), or name a "
            "reverse proxy on this machine in FORWARDED_ALLOW_IPS=127.0.0.1"
        )
    return not endpoint_has_path(s.first_bucket.endpoint_url)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _presigned(s: Settings) -> bool:
    return s.segment_urls == "presigned"


def _segment_urls(s: Settings) -> str:
    if _presigned(s):
        return f"presigned URLs (expire after {s.presign_expiry} s)"
    return f"public URL {s.first_bucket.public_url}"


def _check_public_settings(s: Settings, public_host: str, report: _Report) -> None:
    if public_host.endswith(".r2.dev"):
        report.warn(
            "R2_PUBLIC_URL is an r2.dev address: rate-limited (429s) and never cached, not for production; "
            "connect a custom domain to the bucket and use it (deploy/r2-setup.md, step 2)"
        )
    if s.first_bucket.public_url.startswith("http://") and public_host not in _LOCAL_HOSTS:
        report.warn("R2_PUBLIC_URL is http://: browsers block its segments on an https:// viewer page")


def _check_presigned_settings(s: Settings, endpoint_host: str, report: _Report) -> None:
    # Viewers fetch presigned segments from the S3 API host itself.
    if s.first_bucket.endpoint_url.startswith("http://") and endpoint_host not in _LOCAL_HOSTS:
        report.warn("S3_ENDPOINT_URL is http://: browsers block presigned segments on an https:// viewer page")
    if s.first_bucket.public_url:
        report.warn("R2_PUBLIC_URL is set but not used: with SEGMENT_URLS=presigned viewers fetch segments "
                    "from S3_ENDPOINT_URL")


def _shorten(value: str) -> str:
    return value if len(value) <= 8 else f"{value[:4]}…{value[-2:]}"


# -- the bucket -----------------------------------------------------------------------------------


async def _check_bucket(s: Settings, store: S3Store, report: _Report, r2_dev: str | None = None) -> None:
    token = secrets.token_hex(8)
    name = f".hls-broadcaster-check-{token}.ts"  # a dotfile: never mistaken for one of Owncast's segments
    key = hls.bucket_key(s.r2_key_prefix, name)
    body = f"hls-broadcaster check {token}\n".encode()

    stored, _ = await _store_step(
        s, report, f"put probe object {key}",
        lambda: store.put(key, body, content_type=PROBE_CONTENT_TYPE, cache_control=PROBE_CACHE_CONTROL),
    )  # fmt: skip
    if not stored:
        report.skip(f"head, {'presigned' if _presigned(s) else 'public'} GET, CORS and delete: nothing was stored")
        return
    try:
        found, head = await _store_step(
            s, report, f"head probe object {key}",
            lambda: store.client.head_object(Bucket=s.first_bucket.bucket, Key=key),
        )  # fmt: skip
        if found:
            _check_metadata(head, len(body), report)
        await _store_step(s, report, "head bucket (the service's start-up and health probe)", store.probe)
        if _presigned(s):
            await _check_presigned(s, key, body, report)
        elif s.private:  # a stranger refused, a playlist's URI answered (bucket/edge_check.py)
            said = {"ok": report.ok, "warn": report.warn, "FAIL": report.fail, "skip": report.skip}
            probe = edge_check.Probe(segment_urls(s).segment(key), key, body, r2_dev, s.upload_timeout)
            await edge_check.check(probe, lambda status, text: said[status](text))
        else:
            await _check_public(s, key, body, report)
    finally:
        await _store_step(
            s, report, f"delete probe object {key}", lambda: store.delete(key),
            also="the service deletes each segment after its window, so the token must be allowed to delete",
        )  # fmt: skip


async def _store_step(
    s: Settings, report: _Report, what: str, call: Callable[[], Awaitable[T]], *, also: str = ""
) -> tuple[bool, T | None]:
    """One bucket call under UPLOAD_TIMEOUT; prints ok, or FAIL with the setting to fix."""
    try:
        async with asyncio.timeout(s.upload_timeout):
            result = await call()
    except StoreError as err:
        reason, setting = err.reason, err.setting
    except ClientError as err:  # raw client calls (head_object) raise botocore's own errors
        reason, setting = _client_error_code(err), None
    except (BotoCoreError, OSError, aiohttp.ClientError) as err:
        reason, setting = type(err).__name__, None
    except TimeoutError:
        reason, setting = "Timeout", None
    else:
        report.ok(what)
        return True, result
    report.fail(f"{what} -> {reason}: {_hint(reason, setting)}" + (f"; {also}" if also else ""))
    return False, None


def _client_error_code(err: ClientError) -> str:
    code = str(err.response.get("Error", {}).get("Code") or "")
    status = str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    # HEAD answers have no body, so their errors come back as bare status numbers.
    return {"403": "AccessDenied", "404": "NoSuchKey"}.get(code or status, code or status or "error")


def _hint(reason: str, setting: str | None) -> str:
    if reason in _HINTS:
        name, advice = _HINTS[reason]
        return f"check {name} ({advice})"
    if reason == "NoSuchKey":
        return "the object just stored is not there: is S3_ENDPOINT_URL the bucket's real endpoint?"
    if setting is not None:
        return f"check {setting}"
    return "check S3_ENDPOINT_URL and the network (see the error name above)"


def _check_metadata(head: Any, size: int, report: _Report) -> None:
    """The headers viewers' players and the CDN rely on must be stored with the object."""
    stored_type = head.get("ContentType")
    stored_cache = head.get("CacheControl")
    if head.get("ContentLength") != size:
        report.fail(f"stored size {head.get('ContentLength')} bytes instead of {size}: check S3_ENDPOINT_URL")
    if stored_type != PROBE_CONTENT_TYPE or stored_cache != PROBE_CACHE_CONTROL:
        report.warn(
            f"the bucket kept Content-Type {stored_type!r} and Cache-Control {stored_cache!r} instead of "
            f"{PROBE_CONTENT_TYPE!r} and {PROBE_CACHE_CONTROL!r}: segments would lose their caching headers"
        )


# -- as a viewer sees it ----------------------------------------------------------------------------


async def _check_public(s: Settings, key: str, body: bytes, report: _Report) -> None:
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
        if status != 200:
            hint = _PUBLIC_HINTS.get(
                status, "the public URL should serve the bucket's objects: check R2_PUBLIC_URL"
            )
            report.fail(f"public GET {url} -> {status}: {hint}")
            report.skip("CORS: the public URL does not serve the object")
            return
        if got != body:
            report.fail(
                f"public GET {url} -> 200 but other bytes ({len(got)} instead of {len(body)}): "
                "R2_PUBLIC_URL serves something else (another bucket, a login page?)"
            )
            report.skip("CORS: the public URL does not serve the object")
            return
        report.ok(f"public GET {url} -> 200, same bytes")
        _check_cacheable(cache_control, cf_cache_status, by_cloudflare, report)
        await _check_cors(http, url, report)


def _check_cacheable(cache_control: str | None, cf_cache_status: str | None, by_cloudflare: bool,
                     report: _Report) -> None:
    """A segment fetched through R2_PUBLIC_URL must come with an answer a cache keeps: else every viewer's
    GET reaches the bucket (r2.dev: rate-limited, and Class B reads on a custom domain)."""
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


async def _check_presigned(s: Settings, key: str, body: bytes, report: _Report) -> None:
    """What a viewer's player does with SEGMENT_URLS=presigned: GET through a presigned URL; and
    that an unsigned GET of the same object is refused, which makes presigning worth it."""
    signer = S3Signer(
        endpoint_url=s.first_bucket.endpoint_url, region=s.first_bucket.region, access_key=s.first_bucket.access_key_id,
        secret_key=s.first_bucket.secret_access_key, bucket=s.first_bucket.bucket,
    )  # fmt: skip
    url = signer(key, s.presign_expiry)
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
                "is public, so anyone can read segments without a signature"
            )
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


async def _check_cors(http: aiohttp.ClientSession, url: str, report: _Report, *, shown: str = "") -> None:
    cors_hint = (
        "apply deploy/r2-cors.json to the bucket (deploy/r2-setup.md); changes take up to 30 s. "
        "Without it players on another site fail with status 0"
    )
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
            report.fail(
                f"CORS preflight OPTIONS -> {status}, Access-Control-Allow-Origin {allowed!r}, "
                f"methods {methods!r}: {cors_hint}"
            )
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        report.fail(f"CORS requests to {shown or url} -> {type(err).__name__}: {err}")
