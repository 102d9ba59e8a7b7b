"""`hls-broadcaster check` against a real S3 server (SeaweedFS checks signatures, serves public reads)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.preflight import _check_settings, run_checks
from broadcaster.preflight.machine import bind_hint
from broadcaster.preflight.report import Report
from broadcaster.settings import Address, Settings, load_settings
from broadcaster.state.disk import DirectoryLock
from tests.support.counting_proxy import CountingProxy
from tests.support.local_http import taken_port

pytestmark = pytest.mark.integration

CORS_FILE = Path(__file__).resolve().parent.parent / "deploy" / "r2-cors.json"


def settings_for(server: SeaweedS3, tmp_path: Path, **overrides: str) -> Settings:
    flags = {
        "HLS_DIR": str(tmp_path), "S3_ENDPOINT_URL": server.endpoint_url,
        "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_BUCKET_NAME": server.bucket,
        "R2_PUBLIC_URL": server.public_url, "STATE_DIR": str(tmp_path / "state"), "UPLOAD_TIMEOUT": "5",
        "TRUST_CF_CONNECTING_IP": "true",  # HOST is loopback: behind cloudflared, as deploy/env.example
        "PORT": "0",  # no port to find free (the tests of binding PORT choose theirs)
        **overrides,
    }
    return load_settings(flags=flags, environ={})


async def check(settings: Settings) -> tuple[bool, list[str]]:
    lines: list[str] = []
    ok = await run_checks(settings, print_line=lines.append)
    return ok, lines


async def keys_in(server: SeaweedS3) -> list[str]:
    async with server.client() as s3:
        listed = await s3.list_objects_v2(Bucket=server.bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def bucket_lines(lines: list[str]) -> list[str]:
    """The lines from the first bucket call on (the settings and this machine's checks come before)."""
    first = next(i for i, line in enumerate(lines) if " probe object " in line)
    return lines[first:]


async def test_passes_with_the_right_settings_and_leaves_nothing_behind(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    ok, lines = await check(settings_for(seaweed, tmp_path))
    assert ok, "\n".join(lines)
    assert {line.split(" ", 1)[0] for line in lines[:-1]} == {"ok"}, lines  # the last line is the summary
    text = "\n".join(lines)
    for step in (
        "put probe object live/.hls-broadcaster-check-", "head probe object", "head bucket",
        "public GET " + seaweed.public_url + "/live/", "CORS GET", "CORS preflight", "delete probe object",
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
        seaweed: SeaweedS3, tmp_path: Path, host: str, trust: str, warned: bool) -> None:
    """Behind cloudflared without TRUST_CF_CONNECTING_IP, one client fills the viewer count: a warning."""
    ok, lines = await check(settings_for(seaweed, tmp_path, HOST=host, TRUST_CF_CONNECTING_IP=trust))
    warnings = [line for line in lines if line.startswith("warn") and "TRUST_CF_CONNECTING_IP" in line]
    assert ok and len(warnings) == int(warned), lines
    if warned:
        assert f"HOST is {host}" in warnings[0] and "TRUST_CF_CONNECTING_IP=true" in warnings[0]


async def test_wrong_secret_fails_on_the_first_bucket_check_naming_the_setting(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    wrong = "not-the-secret-0123456789"
    ok, lines = await check(settings_for(seaweed, tmp_path, AWS_SECRET_ACCESS_KEY=wrong))
    assert not ok
    before = lines[:len(lines) - len(bucket_lines(lines))]
    assert {line.split(" ", 1)[0] for line in before} == {"ok"}, lines  # the settings themselves are fine
    first_bucket_check = bucket_lines(lines)[0]
    assert first_bucket_check.startswith("FAIL put probe object"), lines
    assert "SignatureDoesNotMatch" in first_bucket_check and "AWS_SECRET_ACCESS_KEY" in first_bucket_check
    assert not any(line.startswith("ok") for line in bucket_lines(lines)[1:]), lines
    text = "\n".join(lines)
    assert wrong not in text and seaweed.secret_key not in text


@pytest.mark.parametrize(("setting", "value", "said"), [
    ("AWS_BUCKET_NAME", "no-such-bucket", "NoSuchBucket"), ("AWS_ACCESS_KEY_ID", "nobody-here", "InvalidAccessKeyId"),
    ("S3_ENDPOINT_URL", "http://127.0.0.1:9", "FAIL put probe object")])
async def test_wrong_bucket_key_or_unreachable_endpoint_name_their_settings(
        seaweed: SeaweedS3, tmp_path: Path, setting: str, value: str, said: str) -> None:
    ok, lines = await check(settings_for(seaweed, tmp_path, **{setting: value}))
    first = bucket_lines(lines)[0]
    assert not ok and first.startswith("FAIL") and said in first and setting in first, lines


async def test_a_public_url_that_does_not_serve_the_bucket_fails_and_still_cleans_up(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    elsewhere = seaweed.endpoint_url + "/elsewhere"
    ok, lines = await check(settings_for(seaweed, tmp_path, R2_PUBLIC_URL=elsewhere))
    assert not ok
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL public GET "), lines
    assert "R2_PUBLIC_URL" in failed[0], lines
    assert any(line.startswith("ok   delete probe object") for line in lines), lines
    assert await keys_in(seaweed) == []


async def test_a_private_stream_whose_public_url_serves_strangers_fails_the_edge_check(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    """PRIVATE=true with no edge rule in front: a probe without a token answers, which fails."""
    private = settings_for(seaweed, tmp_path, PRIVATE="true", PRIVATE_SECRET="p" * 40)
    ok, lines = await check(private)
    assert not ok
    edge = [line for line in lines if " edge: " in line]
    assert edge[0].startswith("FAIL edge: GET " + seaweed.public_url) and "without a token -> 200" in edge[0]
    assert edge[1].startswith("ok   edge: GET ") and "?verify=... with the window's token -> 200" in edge[1]
    assert edge[-1].startswith("warn edge: the bucket's r2.dev URL was not tried"), edge
    assert not any("verify=" in line.replace("verify=...", "") for line in lines), lines
    # `check --r2-dev URL`: the bucket's r2.dev address tried as a door (here the bucket's public URL).
    doors: list[str] = []
    assert not await run_checks(private, print_line=doors.append, r2_dev=seaweed.public_url)
    assert any(line.startswith("FAIL edge: the bucket's r2.dev URL serves the probe without a token")
               for line in doors), doors
    assert await keys_in(seaweed) == []


async def test_an_endpoint_with_the_bucket_in_its_path_is_caught(seaweed: SeaweedS3, tmp_path: Path) -> None:
    # The R2 dashboard shows the S3 API URL with the bucket appended; pasting it is a classic.
    settings = settings_for(seaweed, tmp_path, S3_ENDPOINT_URL=f"{seaweed.endpoint_url}/{seaweed.bucket}")
    ok, lines = await check(settings)
    assert not ok and lines[0].startswith("FAIL S3_ENDPOINT_URL has a path"), lines
    # One FAIL, for it alone: the bucket's checks that would blame R2_PUBLIC_URL are skipped.
    assert [line for line in lines if line.startswith("FAIL")] == [lines[0]], lines
    assert any(line.startswith("skip the bucket: S3_ENDPOINT_URL names a path") for line in lines), lines
    assert not any("R2_PUBLIC_URL" in line for line in lines if line.startswith("FAIL")), lines


async def test_a_cors_policy_that_leaves_viewers_out_fails_the_cors_checks(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    # (SeaweedFS answers CORS for any origin when a bucket has no policy at all, so restrict it instead.)
    policy = {"CORSRules": [{"AllowedOrigins": ["https://only.example"], "AllowedMethods": ["GET", "HEAD"]}]}
    async with seaweed.client() as s3:
        await s3.put_bucket_cors(Bucket=seaweed.bucket, CORSConfiguration=policy)
    ok, lines = await check(settings_for(seaweed, tmp_path))
    assert not ok
    failed = [line for line in lines if line.startswith("FAIL")]
    assert [line.split(" with ")[0].split(" ->")[0] for line in failed] == [
        "FAIL CORS GET", "FAIL CORS preflight OPTIONS"]
    assert all("deploy/r2-cors.json" in line for line in failed), lines


async def test_the_deploy_cors_policy_satisfies_the_check(seaweed: SeaweedS3, tmp_path: Path) -> None:
    """deploy/r2-cors.json, applied through the S3 API as r2-setup.md says, is what viewers need."""
    policy = json.loads(CORS_FILE.read_text())
    async with seaweed.client() as s3:
        await s3.put_bucket_cors(Bucket=seaweed.bucket, CORSConfiguration=policy)
    ok, lines = await check(settings_for(seaweed, tmp_path))
    assert ok, "\n".join(lines)


# -- this machine: PORT, STATE_DIR ----------------------------------------------------------------------


async def test_a_port_in_use_fails_naming_the_setting_and_a_free_one_passes(seaweed: SeaweedS3, tmp_path: Path) -> None:
    with taken_port() as holder:
        port = holder.getsockname()[1]
        ok, lines = await check(settings_for(seaweed, tmp_path, PORT=str(port)))
    failed = [line for line in lines if line.startswith("FAIL")]
    assert not ok and failed == [f"FAIL HOST/PORT 127.0.0.1:{port}: already in use by another program "
                                 f"(`ss -ltnp 'sport = :{port}'` names it): stop it or choose another port"], lines
    ok, lines = await check(settings_for(seaweed, tmp_path, PORT=str(port)))  # let go: free now
    assert ok and f"ok   HOST/PORT 127.0.0.1:{port}: free, and this user may listen on it" in lines, lines


def test_port_3000_in_use_names_grafana() -> None:
    """Port 3000 in use names Grafana (told by the error alone: 3000 may be another test's)."""
    taken = OSError(errno.EADDRINUSE, "Address already in use")
    assert bind_hint(taken, Address("127.0.0.1", 3000)) == (
        "already in use by another program (Grafana's default port is 3000 too) (`ss -ltnp 'sport = :3000'` "
        "names it): stop it or choose another port")
    assert "Grafana" not in bind_hint(taken, Address("127.0.0.1", 3001))


async def test_the_port_of_a_running_service_is_not_a_failure(seaweed: SeaweedS3, tmp_path: Path) -> None:
    """Run beside the service (same STATE_DIR, whose lock it holds): its port is in use, by it."""
    (tmp_path / "state").mkdir()
    lock = DirectoryLock(tmp_path / "state")
    lock.acquire()
    try:
        with taken_port() as holder:
            port = holder.getsockname()[1]
            ok, lines = await check(settings_for(seaweed, tmp_path, PORT=str(port), METRICS_LISTEN=f"127.0.0.1:{port}"))
    finally:
        lock.release()
    skipped = [line for line in lines if line.startswith("skip") and "holds it" in line]
    assert ok and len(skipped) == 2 and f"(pid {os.getpid()})" in skipped[0], lines


def settings_only(**over: str) -> Settings:
    return load_settings(environ={"HLS_DIR": "/", "S3_ENDPOINT_URL": "https://acc.r2.cloudflarestorage.com",
                                  "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_BUCKET_NAME": "b1b",
                                  "R2_PUBLIC_URL": "https://media.example.com", "STATE_DIR": "/nonexistent/state",
                                  "TRUST_CF_CONNECTING_IP": "true", **over}, make_state_dir=False)


@pytest.mark.parametrize(("url", "warned"), [("https://pub-0123abcd.r2.dev", True),
                                             ("https://media.example.com", False)])
def test_an_r2_dev_public_url_is_a_warning_not_for_production(url: str, warned: bool) -> None:
    lines: list[str] = []
    _check_settings(settings_only(R2_PUBLIC_URL=url), Report(lines.append, []))
    said = [line for line in lines if line.startswith("warn") and "r2.dev" in line]
    assert len(said) == int(warned), lines
    if warned:
        assert said[0].startswith("warn R2_PUBLIC_URL is an r2.dev address: rate-limited (429s) and never cached, "
                                  "not for production"), said


@pytest.mark.parametrize(("cache_status", "cached"), [("DYNAMIC", False), (None, False), ("MISS", True),
                                                     ("HIT", True)])
async def test_a_segment_fetched_through_the_public_url_must_be_cacheable(
        seaweed: SeaweedS3, tmp_path: Path, cache_status: str | None, cached: bool) -> None:
    """DYNAMIC (or no CF-Cache-Status) warns naming the Cache Rule; MISS or HIT is ok."""
    # A stand-in for Cloudflare's edge: what it passes on carries CF-Ray (and CF-Cache-Status when given).
    edge = CountingProxy(seaweed.public_url, adds={"CF-Ray": "8f0000000000abcd-AMS", "Server": "cloudflare"})
    if cache_status is not None:
        edge.adds["CF-Cache-Status"] = cache_status
    await edge.start()
    try:
        ok, lines = await check(settings_for(seaweed, tmp_path, R2_PUBLIC_URL=edge.url))
    finally:
        await edge.close()
    assert ok, lines
    cache_lines = [line for line in lines if "CF-Cache-Status" in line]
    assert len(cache_lines) == 1, lines
    if cached:
        assert cache_lines[0].startswith("ok   a segment fetched through R2_PUBLIC_URL is cacheable"), lines
    else:
        assert cache_lines[0].startswith(f"warn a segment fetched through R2_PUBLIC_URL is not cached "
                                         f"(CF-Cache-Status: {cache_status or 'none'})"), lines
        assert "Cache Rule" in cache_lines[0]
