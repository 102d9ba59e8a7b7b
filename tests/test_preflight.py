"""`hls-broadcaster check` against a real S3 server (SeaweedFS checks signatures, serves public reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.preflight import run_checks
from broadcaster.settings import Settings, load_settings

pytestmark = pytest.mark.integration

CORS_FILE = Path(__file__).resolve().parent.parent / "deploy" / "r2-cors.json"


def settings_for(server: SeaweedS3, tmp_path: Path, **overrides: str) -> Settings:
    flags = {
        "HLS_DIR": str(tmp_path),
        "S3_ENDPOINT_URL": server.endpoint_url,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_BUCKET_NAME": server.bucket,
        "R2_PUBLIC_URL": server.public_url,
        "STATE_DIR": str(tmp_path / "state"),
        "UPLOAD_TIMEOUT": "5",
        "TRUST_CF_CONNECTING_IP": "true",  # HOST is loopback: behind cloudflared, as deploy/env.example
        **overrides,
    }
    return load_settings(flags=flags, environ={})


async def check(settings: Settings) -> tuple[bool, list[str]]:
    lines: list[str] = []
    ok = await run_checks(settings, print_line=lines.append)
    return ok, lines


def s3_client(server: SeaweedS3) -> Any:  # aiobotocore's client context manager is untyped
    return get_session().create_client(
        "s3", endpoint_url=server.endpoint_url, region_name="auto", aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, config=server.client_config(),
    )  # fmt: skip


async def keys_in(server: SeaweedS3) -> list[str]:
    async with s3_client(server) as s3:
        listed = await s3.list_objects_v2(Bucket=server.bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def statuses(lines: list[str]) -> list[str]:
    return [line.split(" ", 1)[0] for line in lines[:-1]]  # the last line is the summary


async def test_passes_with_the_right_settings_and_leaves_nothing_behind(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    ok, lines = await check(settings_for(seaweed, tmp_path))

    assert ok, "\n".join(lines)
    assert set(statuses(lines)) == {"ok"}, lines
    text = "\n".join(lines)
    for step in (
        "put probe object live/.hls-broadcaster-check-",
        "head probe object",
        "head bucket",
        "public GET " + seaweed.public_url + "/live/",
        "CORS GET",
        "CORS preflight",
        "delete probe object",
    ):
        assert step in text, (step, lines)
    assert lines[-1].startswith("all checks passed")
    assert seaweed.secret_key not in text
    assert await keys_in(seaweed) == []


@pytest.mark.parametrize(("host", "trust", "warned"), [
    ("127.0.0.1", "false", True), ("::1", "false", True), ("localhost", "false", True),
    ("127.0.0.1", "true", False), ("0.0.0.0", "false", False), ("192.0.2.10", "false", False),
])
async def test_loopback_without_trusting_cf_connecting_ip_is_a_warning(
    seaweed: SeaweedS3, tmp_path: Path, host: str, trust: str, warned: bool
) -> None:
    """Issue 41, V3: behind cloudflared on loopback every viewer comes from 127.0.0.1: without
    TRUST_CF_CONNECTING_IP one client fills the viewer count. A warning, not a failure (a local test
    without the tunnel is fine)."""
    ok, lines = await check(settings_for(seaweed, tmp_path, HOST=host, TRUST_CF_CONNECTING_IP=trust))
    warnings = [line for line in lines if line.startswith("warn") and "TRUST_CF_CONNECTING_IP" in line]
    assert ok and len(warnings) == int(warned), lines
    if warned:
        assert f"HOST is {host}" in warnings[0] and "TRUST_CF_CONNECTING_IP=true" in warnings[0]


async def test_wrong_secret_fails_on_the_first_bucket_check_naming_the_setting(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    wrong = "not-the-secret-0123456789"
    ok, lines = await check(settings_for(seaweed, tmp_path, AWS_SECRET_ACCESS_KEY=wrong))

    assert not ok
    assert statuses(lines)[:2] == ["ok", "FAIL"], lines  # the settings themselves are fine
    first_bucket_check = lines[1]
    assert first_bucket_check.startswith("FAIL put probe object"), lines
    assert "SignatureDoesNotMatch" in first_bucket_check and "AWS_SECRET_ACCESS_KEY" in first_bucket_check
    assert not any(line.startswith("ok") for line in lines[2:]), lines
    text = "\n".join(lines)
    assert wrong not in text and seaweed.secret_key not in text


async def test_wrong_bucket_and_key_name_their_settings(seaweed: SeaweedS3, tmp_path: Path) -> None:
    ok, lines = await check(settings_for(seaweed, tmp_path, AWS_BUCKET_NAME="no-such-bucket"))
    assert not ok and "NoSuchBucket" in lines[1] and "AWS_BUCKET_NAME" in lines[1], lines

    ok, lines = await check(settings_for(seaweed, tmp_path, AWS_ACCESS_KEY_ID="nobody-here"))
    assert not ok and "InvalidAccessKeyId" in lines[1] and "AWS_ACCESS_KEY_ID" in lines[1], lines


async def test_a_public_url_that_does_not_serve_the_bucket_fails_and_still_cleans_up(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    ok, lines = await check(
        settings_for(seaweed, tmp_path, R2_PUBLIC_URL=seaweed.endpoint_url + "/elsewhere")
    )

    assert not ok
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL public GET ") and "R2_PUBLIC_URL" in failed[0], (
        lines
    )
    assert any(line.startswith("ok   delete probe object") for line in lines), lines
    assert await keys_in(seaweed) == []


async def test_unreachable_endpoint_names_it(seaweed: SeaweedS3, tmp_path: Path) -> None:
    ok, lines = await check(settings_for(seaweed, tmp_path, S3_ENDPOINT_URL="http://127.0.0.1:9"))

    assert not ok and lines[1].startswith("FAIL put probe object") and "S3_ENDPOINT_URL" in lines[1], lines


async def test_an_endpoint_with_the_bucket_in_its_path_is_caught(seaweed: SeaweedS3, tmp_path: Path) -> None:
    # The R2 dashboard shows the S3 API URL with the bucket appended; pasting it is a classic.
    settings = settings_for(seaweed, tmp_path, S3_ENDPOINT_URL=f"{seaweed.endpoint_url}/{seaweed.bucket}")
    ok, lines = await check(settings)

    assert not ok and lines[0].startswith("FAIL S3_ENDPOINT_URL has a path"), lines


async def test_a_cors_policy_that_leaves_viewers_out_fails_the_cors_checks(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    # (SeaweedFS answers CORS for any origin when a bucket has no policy at all, so restrict it instead.)
    policy = {"CORSRules": [{"AllowedOrigins": ["https://only.example"], "AllowedMethods": ["GET", "HEAD"]}]}
    async with s3_client(seaweed) as s3:
        await s3.put_bucket_cors(Bucket=seaweed.bucket, CORSConfiguration=policy)
    ok, lines = await check(settings_for(seaweed, tmp_path))

    assert not ok
    failed = [line for line in lines if line.startswith("FAIL")]
    assert [line.split(" with ")[0].split(" ->")[0] for line in failed] == [
        "FAIL CORS GET",
        "FAIL CORS preflight OPTIONS",
    ]
    assert all("deploy/r2-cors.json" in line for line in failed), lines


async def test_the_deploy_cors_policy_satisfies_the_check(seaweed: SeaweedS3, tmp_path: Path) -> None:
    """deploy/r2-cors.json, applied through the S3 API as r2-setup.md says, is what viewers need."""
    policy = json.loads(CORS_FILE.read_text())
    async with s3_client(seaweed) as s3:
        await s3.put_bucket_cors(Bucket=seaweed.bucket, CORSConfiguration=policy)
    ok, lines = await check(settings_for(seaweed, tmp_path))

    assert ok, "\n".join(lines)
