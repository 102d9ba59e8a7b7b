"""SEGMENT_URLS=presigned end to end: a private bucket on SeaweedFS, the service, the Owncast emulator and
real players. Every listed URL is presigned and serves its segment; a URI never changes while listed,
not even across a restart; `check` proves the presigned path."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.preflight import run_checks
from broadcaster.settings import load_settings
from tests.support.browser import launch_chromium, needs_chromium, open_viewer, watch
from tests.support.service_process import ServiceProcess, service_env
from tests.support.observe import Observed

EXPIRY = 900
pytestmark = pytest.mark.integration


@pytest.fixture
async def private_s3(tmp_path: Path) -> AsyncIterator[SeaweedS3]:
    """SeaweedFS with no anonymous identity: only signed and presigned requests read the bucket."""
    async with SeaweedS3(tmp_path / "seaweed", public_read=False, discard=True) as server:
        yield server


def presigned_env(hls_dir: Path, s3: SeaweedS3, state_dir: Path, **over: str) -> dict[str, str]:
    # The bucket's pathway alone: the claim is every segment listed presigned from the bucket.
    over = {"PATHWAYS": "bucket", **over}
    env = service_env(hls_dir, s3, state_dir, SEGMENT_URLS="presigned", PRESIGN_EXPIRY=str(EXPIRY), **over)
    del env["R2_PUBLIC_URL"]  # a private bucket has no public URL
    return env


def uris(seen: Observed) -> dict[int, dict[int, str]]:
    """variant -> media sequence number -> URI, as listed."""
    return {v: {n: uri for n, (uri, _) in listed.items()} for v, listed in seen.ours.items()}


def assert_presigned(uri: str, s3: SeaweedS3) -> None:
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == s3.endpoint_url, uri
    assert parts.path.startswith(f"/{s3.bucket}/live/"), uri
    assert query["X-Amz-Expires"] == [str(EXPIRY)] and len(query["X-Amz-Signature"][0]) == 64, uri


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with http.get(url) as r:
        return r.status, await r.read()


# -- the service ---------------------------------------------------------------------------------------


async def test_every_listed_url_is_presigned_serves_its_segment_and_never_changes_and_ffmpeg_plays(
        tmp_path: Path, private_s3: SeaweedS3, owncast: OwncastEmulator) -> None:
    env = presigned_env(owncast.variant_dir(0).parent, private_s3, tmp_path / "state", WINDOW_SECONDS="4")
    seen = Observed()
    async with ServiceProcess(env, tmp_path) as service, aiohttp.ClientSession() as http:
        look = seen.at(http, service.url, owncast)
        await look.listed_in_each(3)
        first = uris(seen)[0][min(seen.ours[0])]
        assert (await get(http, first.split("?")[0]))[0] == 403  # private: the signature is what opens it
        player = await asyncio.create_subprocess_exec(
            ffmpeg_exe(), "-hide_banner", "-loglevel", "warning", "-i", f"{service.url}/live/playlist.m3u8",
            "-c", "copy", "-f", "mpegts", str(tmp_path / "played.ts"),
            stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await look.listed_in_each(10)
        await look.ended()  # Owncast's offline tail + ENDLIST: ffmpeg finishes
        async with asyncio.timeout(30):
            _, player_err = await player.communicate()
        assert player.returncode == 0, player_err.decode()
        assert "Media sequence changed" not in player_err.decode(), player_err.decode()
        assert (tmp_path / "played.ts").stat().st_size > 100_000

        compared = 0
        for v in (0, 1):
            for uri in uris(seen)[v].values():
                assert_presigned(uri, private_s3)
                status, body = await get(http, uri)
                assert status == 200, uri
                local = owncast.variant_dir(v) / urlsplit(uri).path.rsplit("/", 1)[1]
                if local.exists():  # the offline clip is not Owncast's media; old ones are cleaned up
                    assert body == local.read_bytes(), uri
                    compared += 1
        assert compared >= 10
        assert await service.stop(signal.SIGTERM) == 0
    log = "\n".join(service.lines)
    assert private_s3.secret_key not in log and service.problems() == []


async def test_a_restart_keeps_the_listed_urls_byte_for_byte(
        tmp_path: Path, private_s3: SeaweedS3, owncast: OwncastEmulator) -> None:
    env = presigned_env(owncast.variant_dir(0).parent, private_s3, tmp_path / "state", WINDOW_SECONDS="10")
    before, after = Observed(), Observed()
    async with aiohttp.ClientSession() as http:
        async with ServiceProcess(env, tmp_path) as first:
            await before.at(http, first.url, owncast).listed_in_each(4)
            assert await first.stop(signal.SIGTERM) == 0
        async with ServiceProcess(env, tmp_path) as second:
            assert any("continuing from saved state" in line for line in second.lines)
            look = after.at(http, second.url, owncast)
            await look.poll()
            kept = {(v, n) for v in (0, 1) for n in after.ours[v].keys() & before.ours[v].keys()}
            assert len(kept) >= 4, (uris(before), uris(after))
            # New segments come and go; the ones listed before the restart keep their URIs (not re-signed).
            newest = max(before.ours[0])
            await look.until(lambda: max(after.ours[0]) >= newest + 3, "3 new segments after the restart", 20)
            assert await second.stop(signal.SIGTERM) == 0
    for v in (0, 1):
        for n in after.ours[v].keys() & before.ours[v].keys():
            assert uris(after)[v][n] == uris(before)[v][n], (v, n)
        for uri in uris(after)[v].values():
            assert_presigned(uri, private_s3)
    assert first.problems() == [] and second.problems() == []


async def test_an_fmp4_init_section_is_listed_presigned(tmp_path: Path, recordings: Recordings, private_s3: SeaweedS3) -> None:
    async with OwncastEmulator(tmp_path / "hls", segment_type="fmp4", recordings=recordings) as owncast:
        env = presigned_env(tmp_path / "hls", private_s3, tmp_path / "state")
        async with ServiceProcess(env, tmp_path) as service, aiohttp.ClientSession() as http:
            await Observed().at(http, service.url, owncast).listed_in_each(3)
            inits: set[str] = set()
            for v in (0, 1):
                text = (await get(http, f"{service.url}/live/{v}/playlist.m3u8"))[1].decode()
                inits |= {line.split('"')[1] for line in text.splitlines() if line.startswith("#EXT-X-MAP")}
            assert inits
            for init in inits:
                assert_presigned(init, private_s3)
                async with http.get(init) as r:
                    assert r.status == 200 and r.headers["Content-Type"] == "video/mp4", init
            # ffmpeg reads every variant on both pathways (the VM's redirect to the presigned URL).
            player = await asyncio.create_subprocess_exec(
                ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", f"{service.url}/live/master.m3u8",
                "-t", "3", "-c", "copy", "-f", "null", "-",
                stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            async with asyncio.timeout(30):
                _, err = await player.communicate()
            assert player.returncode == 0, err.decode() + await what_it_got(http, err.decode())
            assert await service.stop() == 0
        assert service.problems() == []


async def what_it_got(http: aiohttp.ClientSession, said: str) -> str:
    """Each URL a player's error names, asked again now: its answer, and where a redirect leads."""
    out = []
    for url in sorted(set(re.findall(r"'(https?://[^']+)'", said))):
        async with http.get(url, allow_redirects=False) as r:
            line = f"\n{url}: {r.status} {(await r.read())[:80]!r}"
            if (there := r.headers.get("Location")) is not None:
                async with http.get(there) as followed:
                    line += f" -> {there}: {followed.status}"
        out.append(line)
    return "".join(out)


# -- hls.js in a real browser ----------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
async def test_hls_js_plays_presigned_segments_from_a_private_bucket(
        tmp_path: Path, private_s3: SeaweedS3, owncast: OwncastEmulator) -> None:
    from playwright.async_api import Response, async_playwright

    # The bucket's pathway alone (presigned_env): a probe of a loaded SeaweedFS would steer the page.
    env = presigned_env(owncast.variant_dir(0).parent, private_s3, tmp_path / "state", WINDOW_SECONDS="8")
    segments: list[tuple[str, int]] = []
    console_errors: list[str] = []

    def on_response(r: Response) -> None:
        if urlsplit(r.url).path.endswith(".ts"):
            segments.append((r.url, r.status))

    async with ServiceProcess(env, tmp_path) as service, async_playwright() as pw:
        await owncast.wait_for_segments(0, 3, timeout=20)
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            page.on("response", on_response)
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            await open_viewer(page, f"{service.url}/")
            stats = await watch(page, 5)
        finally:
            await browser.close()
        assert await service.stop() == 0
    s3_host = urlsplit(private_s3.endpoint_url).netloc
    assert stats["errors"] == [] and stats["segments"] >= 5 and stats["segmentHosts"] == [s3_host], stats
    assert len(segments) >= 5
    for url, status in segments:
        assert urlsplit(url).netloc == s3_host and "X-Amz-Signature=" in urlsplit(url).query, url
        assert status == 200, (url, status)
    assert [e for e in console_errors if "Failed to load resource" not in e] == []


# -- hls-broadcaster check ---------------------------------------------------------------------------------


async def check(s3: SeaweedS3, tmp_path: Path, **over: str) -> tuple[bool, list[str]]:
    settings = load_settings(environ={
        "HLS_DIR": str(tmp_path), "S3_ENDPOINT_URL": s3.endpoint_url, "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_BUCKET_NAME": s3.bucket, "STATE_DIR": str(tmp_path / "state"),
        "SEGMENT_URLS": "presigned", "PRESIGN_EXPIRY": str(EXPIRY), "REWIND_SECONDS": "0",
        "TRUST_CF_CONNECTING_IP": "true",  # HOST is loopback: behind cloudflared, as deploy/env.example says
        # Any free port: the default 3000 may be another test's service at that moment.
        "PORT": "0",
        **over,
    })  # fmt: skip
    lines: list[str] = []
    ok = await run_checks(settings, print_line=lines.append)
    return ok, lines


async def test_check_reads_through_a_presigned_url_and_says_the_bucket_is_private(
        tmp_path: Path, private_s3: SeaweedS3) -> None:
    ok, lines = await check(private_s3, tmp_path)
    text = "\n".join(lines)
    assert ok, text
    assert [line.split(" ", 1)[0] for line in lines[:-1]] == ["ok"] * (len(lines) - 1), text
    assert f"presigned URLs (expire after {EXPIRY} s)" in lines[0] and "public URL" not in text
    got = next(line for line in lines if line.startswith("ok   presigned GET "))
    assert "-> 200, same bytes; the bucket is private (an unsigned GET -> 403)" in got, got
    assert any(line.startswith("ok   CORS GET with Origin") for line in lines), text
    assert "X-Amz-Signature" not in text and private_s3.secret_key not in text

    wrong = "not-the-secret-0123456789"  # nothing stored: the presigned GET is skipped, not failed
    ok, lines = await check(private_s3, tmp_path, AWS_SECRET_ACCESS_KEY=wrong)
    text = "\n".join(lines)
    failed = [line for line in lines if line.startswith("FAIL")]
    assert not ok and len(failed) == 1 and "AWS_SECRET_ACCESS_KEY" in failed[0], text
    assert any(line.startswith("skip head, presigned GET, CORS and delete") for line in lines), text
    assert wrong not in text


async def test_check_warns_when_the_bucket_is_public_anyway(tmp_path: Path, seaweed: SeaweedS3) -> None:
    ok, lines = await check(seaweed, tmp_path)
    assert ok  # it works for viewers; it just protects nothing
    warned = [line for line in lines if line.startswith("warn presigned GET")]
    assert len(warned) == 1 and "the bucket is public" in warned[0], lines
