"""Segment URLs: public ones, and presigned ones that a real S3 server (SeaweedFS, private bucket) accepts
until they expire; the init section's URL reused, then signed anew before it can expire while listed."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.settings import Settings, SettingsError, load_settings
from broadcaster.bucket.store import BucketAccess
from broadcaster.bucket.urls import PresignedUrls, PublicUrls, S3Signer, segment_urls
from tests.support.fakes import Clock
from tests.support.settings_env import SECRET, env
from tests.support.waiting import until


def settings(tmp_path: Path, **over: str) -> Settings:
    over = {"AWS_ACCESS_KEY_ID": "key-id", "SEGMENT_URLS": "presigned", "REWIND_SECONDS": "0", **over}
    return load_settings(environ=env(tmp_path, **over))


class FakeSigner:
    """Numbers its signatures, so a test sees exactly when a URL was signed anew."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, key: str, expires_in: int) -> str:
        self.calls.append((key, expires_in))
        return f"https://s3.example/{key}?sig={len(self.calls)}"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_public_urls_are_the_base_and_the_key_and_stable(tmp_path: Path) -> None:
    urls = segment_urls(settings(tmp_path, SEGMENT_URLS="public", R2_PUBLIC_URL="https://media.example.com/"))
    assert isinstance(urls, PublicUrls)
    assert urls.segment("live/0/a.ts") == "https://media.example.com/live/0/a.ts" == urls.segment("live/0/a.ts")
    assert urls.init("live/0/run-init.mp4") == "https://media.example.com/live/0/run-init.mp4"


def test_a_presigned_url_names_the_object_on_the_api_host_and_lasts_presign_expiry(tmp_path: Path) -> None:
    urls = segment_urls(settings(tmp_path, PRESIGN_EXPIRY="900"))  # no R2_PUBLIC_URL needed
    assert isinstance(urls, PresignedUrls)
    url = urls.segment("live/0/stream-abc-7.ts")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https", "acc.r2.cloudflarestorage.com", "/my-bucket/live/0/stream-abc-7.ts"
    )  # fmt: skip
    q = query(url)
    assert q["X-Amz-Expires"] == "900" and q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert q["X-Amz-Credential"].startswith("key-id/") and "/auto/s3/aws4_request" in q["X-Amz-Credential"]
    assert len(q["X-Amz-Signature"]) == 64
    assert urlsplit(urls.init("live/0/abc-init.mp4")).path == "/my-bucket/live/0/abc-init.mp4"


def test_the_secret_is_never_in_reprs_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # botocore logs what it signs at debug level
    urls = segment_urls(settings(tmp_path))
    url = urls.segment("live/0/a.ts") + urls.init("live/0/i.mp4")
    shown = repr(urls) + str(urls) + url + caplog.text
    assert "acc.r2.cloudflarestorage.com" in repr(urls) and "expiry=3600" in repr(urls)
    assert SECRET not in shown


def test_a_presigned_segment_is_signed_once_per_listing_with_presign_expiry() -> None:
    signer = FakeSigner()
    urls = PresignedUrls(signer, expiry=3600)
    urls.segment("live/0/a.ts")
    assert signer.calls == [("live/0/a.ts", 3600)]


@pytest.mark.parametrize(("expiry", "reused_for", "step"), [(3600, 1799, 1), (200, 49.9, 0.1)])
def test_an_init_url_is_reused_until_half_its_life_is_gone_or_it_could_expire_while_listed(
        expiry: int, reused_for: float, step: float) -> None:
    """Half its life, or (PRESIGN_EXPIRY just above a segment's life in the playlists) all but keep_valid."""
    signer, clock = FakeSigner(), Clock()
    urls = PresignedUrls(signer, expiry=expiry, keep_valid=150, clock=clock)
    first = urls.init("live/0/run1-init.mp4")
    clock.t += reused_for
    assert urls.init("live/0/run1-init.mp4") == first  # same URI: no new EXT-X-MAP for every segment
    other = urls.init("live/1/run1-init.mp4")  # each variant's init has its own URL
    assert other != first
    clock.t += step
    second = urls.init("live/0/run1-init.mp4")
    assert second != first and signer.calls[-1] == ("live/0/run1-init.mp4", expiry)
    clock.t += reused_for
    assert urls.init("live/0/run1-init.mp4") == second
    assert len(signer.calls) == 3


def test_keep_valid_is_the_life_the_settings_check_demands(tmp_path: Path) -> None:
    s = settings(tmp_path, WINDOW_SECONDS="20", CLEANUP_MARGIN="30", PRESIGN_EXPIRY="90")
    assert s.segment_url_life == 90
    with pytest.raises(SettingsError, match="PRESIGN_EXPIRY"):
        settings(tmp_path, WINDOW_SECONDS="20", CLEANUP_MARGIN="30", PRESIGN_EXPIRY="89")


def test_the_init_cache_forgets_old_runs_not_the_one_in_use() -> None:
    signer, clock = FakeSigner(), Clock()
    urls = PresignedUrls(signer, expiry=3600, clock=clock)
    first = urls.init("run0-init.mp4")
    for run in range(1, 200):
        urls.init(f"run{run}-init.mp4")
        assert urls.init("run0-init.mp4") == first  # in use all along: kept
    urls.init("run1-init.mp4")  # long forgotten: signed again
    assert len(signer.calls) == 201


@pytest.mark.integration
async def test_presigned_urls_open_a_private_bucket_until_they_expire(tmp_path: Path) -> None:
    async with SeaweedS3(tmp_path / "seaweed", public_read=False, discard=True) as s3:
        key, body = "live/0/stream-x-1.ts", b"\x47" * 188 * 10
        async with s3.client() as client:
            await client.put_object(Bucket=s3.bucket, Key=key, Body=body, ContentType="video/mp2t")
        s = settings(
            tmp_path, S3_ENDPOINT_URL=s3.endpoint_url, AWS_ACCESS_KEY_ID=s3.access_key,
            AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_BUCKET_NAME=s3.bucket,
        )  # fmt: skip
        urls = segment_urls(s)
        signer = S3Signer(BucketAccess(s3.endpoint_url, "auto", s3.access_key, s3.secret_key, s3.bucket))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def get(url: str) -> tuple[int, bytes]:
                async with http.get(url) as r:
                    return r.status, await r.read()

            assert (await get(f"{s3.public_url}/{key}"))[0] == 403  # private: no unsigned reads
            assert await get(urls.segment(key)) == (200, body)
            assert await get(urls.init(key)) == (200, body)
            tampered = urls.segment(key).replace("stream-x-1", "stream-x-2")
            assert (await get(tampered))[0] == 403
            # X-Amz-Date has whole seconds, so a URL for 3 s is good for 2 to 3 s from now: signed just
            # before its first use (a 1 s one could be dead on arrival), then waited out.
            short = signer(key, 3)
            assert await get(short) == (200, body)
            async def refused() -> tuple[int, bytes] | None:
                got = await get(short)
                return got if got[0] != 200 else None

            answer = await until(refused, "the short URL expired", 8, every=0.05)
            assert answer[0] == 403 and b"expired" in answer[1], answer
            assert await get(urls.segment(key)) == (200, body)  # the long one still works
