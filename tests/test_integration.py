"""The whole service as a process, against a real S3 server (SeaweedFS) and real ffmpeg output
written the way Owncast writes it (in place, two variants, 1 s segments)."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo import emulator
from broadcaster.demo.emulator import Ledger, OwncastEmulator
from broadcaster.demo.owncast_files import new_shortid
from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist import hls
from tests.support.scrape import scraped, total
from tests.support.service_process import ServiceProcess, service_env
from tests.support.hls_checker import check_master
from tests.support.observe import Observed, health as read_health
from tests.support.whole import assert_whole

pytestmark = pytest.mark.integration


async def test_every_segment_is_uploaded_and_listed_in_order_and_ffmpeg_plays_it(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", WINDOW_SECONDS="4",
                      PATHWAYS="bucket,vm")
    seen = Observed()
    async with ServiceProcess(env, tmp_path) as service, aiohttp.ClientSession() as http:
        look = seen.at(http, service.url, owncast)
        # A real HLS client reads the live stream while it runs.
        await look.until(lambda: len(seen.ours[0]) >= 3, "3 segments listed", 20)
        player = await asyncio.create_subprocess_exec(
            ffmpeg_exe(), "-hide_banner", "-loglevel", "warning", "-i", f"{service.url}/live/playlist.m3u8",
            "-c", "copy", "-f", "mpegts", str(tmp_path / "played.ts"),
            stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        await look.listed_in_each(12)
        await look.ended()  # Owncast's offline tail + ENDLIST
        async with asyncio.timeout(30):
            _, player_err = await player.communicate()
        assert player.returncode == 0, player_err.decode()
        warnings = player_err.decode()
        assert "Media sequence changed" not in warnings and "expired from playlists" not in warnings, warnings
        assert (tmp_path / "played.ts").stat().st_size > 100_000

        async with http.get(f"{service.url}/live/master.m3u8") as r:
            master = await r.text()
        host = service.url.removeprefix("http://")
        assert check_master(master, host=host) == []
        # Content steering (PATHWAYS=bucket,vm): each variant on the bucket's pathway and the VM's.
        assert f"\nhttp://{host}/live/0/playlist.m3u8" in master and f"\nhttp://{host}/live/vm/1/playlist.m3u8" in master
        assert "RESOLUTION=" in master and 'PATHWAY-ID="vm"' in master

        for v in (0, 1):
            # Every segment Owncast listed is listed by us, once, in Owncast's order...
            seen.assert_in_owncast_order(v)
            names = [uri.rsplit("/", 1)[1] for uri in seen.uris(v)]
            # ...with its real duration...
            for (uri, duration) in seen.ours[v].values():
                assert duration == pytest.approx(seen.owncast[v][uri.rsplit("/", 1)[1]], abs=0.0006)
            # ...and each is a public object in the bucket with the segment headers...
            for name in names:
                uri = f"{seaweed.public_url}/{hls.object_key('live', v, name)}"
                async with http.get(uri, headers={"Origin": "https://viewer.example"}) as r:
                    assert r.status == 200, uri
                    assert r.headers["Content-Type"] == "video/mp2t"
                    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://viewer.example")
        # ...holding, byte for byte, the file Owncast finished writing (its writer's ledger).
        await assert_whole(http, owncast.ledger, seen.listed_files(owncast))

        samples = await scraped(http, service.url)
        listed = total(samples, "hls_broadcaster_segments_listed_total")
        assert listed == len(seen.ours[0]) + len(seen.ours[1])
        assert total(samples, "hls_broadcaster_listing_delay_seconds_count") == listed
        status, health = await read_health(http, service.url)
        assert status == 200 and health["status"] == "ok" and health["stream"] == "ended"
        assert health["uploads"]["failed"] == 0 and health["storage_reachable"] is True
        assert seaweed.secret_key not in await (await http.get(f"{service.url}/metrics")).text()

        assert await service.stop(signal.SIGTERM) == 0
    assert seaweed.secret_key not in "\n".join(service.lines)
    assert service.problems() == []


async def test_fmp4_stream_lists_its_init_section(tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A shortid beginning with '_', as Owncast's alphabet allows: its init section is named after it.
    monkeypatch.setattr(emulator, "new_shortid", lambda: "_" + new_shortid()[1:])
    async with OwncastEmulator(tmp_path / "hls", segment_type="fmp4", ledger=Ledger(), recordings=recordings) as oc:
        env = service_env(tmp_path / "hls", seaweed, tmp_path / "state", PATHWAYS="bucket,vm")
        seen = Observed()
        async with ServiceProcess(env, tmp_path) as service, aiohttp.ClientSession() as http:
            await seen.at(http, service.url, oc).listed_in_each(4)
            async with http.get(f"{service.url}/live/playlist.m3u8") as r:
                text = await r.text()
            assert "#EXT-X-VERSION:6" in text and "#EXT-X-MAP:URI=" in text
            init = text.split('#EXT-X-MAP:URI="')[1].split('"')[0]
            async with http.get(init) as r:
                assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
            # The multivariant playlist, and the VM's pathway alone.
            vm = f"{service.url}/live/vm/0/playlist.m3u8"
            for url in (f"{service.url}/live/master.m3u8", vm):
                player = await asyncio.create_subprocess_exec(
                    ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", url,
                    "-t", "3", "-c", "copy", "-f", "null", "-",
                    stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                async with asyncio.timeout(30):
                    _, err = await player.communicate()
                assert player.returncode == 0, (url, err.decode())
            await assert_whole(http, oc.ledger, seen.listed_files(oc))  # each .m4s as Owncast finished it
            # Every URI the VM's media playlist lists, the init section too, is Owncast's file.
            await assert_whole(http, oc.ledger, await vm_listed(http, vm, oc, 0))
            assert await service.stop() == 0
        assert service.problems() == []


async def vm_listed(http: aiohttp.ClientSession, playlist: str, oc: OwncastEmulator,
                    v: int) -> list[tuple[str, Path]]:
    """Each URI a VM media playlist lists (init section too), with the Owncast file it was made from."""
    async with http.get(playlist) as r:
        assert r.status == 200, playlist
        text = await r.text()
    base = playlist.split("/live/", 1)[0]
    uris = [line.split('"')[1] if line.startswith("#EXT-X-MAP:") else line for line in text.splitlines()
            if line.startswith("#EXT-X-MAP:") or (line and not line.startswith("#"))]
    assert any(uri.endswith(".mp4") for uri in uris), text
    run = f"stream-{oc.shortid}-"
    names = [uri.rsplit("/", 1)[1] for uri in uris]
    files = [name.removeprefix(run) if name.endswith(".mp4") else name for name in names]
    return [(base + uri, oc.variant_dir(v) / file) for uri, file in zip(uris, files)]


async def test_wrong_secret_stops_start_up_with_one_line_naming_it(tmp_path: Path, seaweed: SeaweedS3) -> None:
    (tmp_path / "hls").mkdir()
    env = service_env(tmp_path / "hls", seaweed, tmp_path / "state", AWS_SECRET_ACCESS_KEY="wrong-secret-123")
    proc = ServiceProcess(env, tmp_path)
    errors = await proc.refused()
    assert len(errors) == 1 and "AWS_SECRET_ACCESS_KEY" in errors[0]
    assert "Traceback" not in "\n".join(proc.lines) and "wrong-secret-123" not in "\n".join(proc.lines)


async def run_command(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broadcaster", *args, env=env, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_check_command_passes_on_a_working_bucket_and_names_a_wrong_secret(
        tmp_path: Path, seaweed: SeaweedS3) -> None:
    (tmp_path / "hls").mkdir()
    me = ("--as", pwd.getpwuid(os.geteuid()).pw_name)  # as root, check fails unless told the service's user
    code, out = await run_command("check", *me, env=service_env(tmp_path / "hls", seaweed, tmp_path / "state"),
                                  cwd=tmp_path)
    assert code == 0, out
    assert "FAIL" not in out and "Traceback" not in out
    env = service_env(tmp_path / "hls", seaweed, tmp_path / "state", AWS_SECRET_ACCESS_KEY="wrong-secret-123")
    code, out = await run_command("check", *me, env=env, cwd=tmp_path)
    assert code == 2  # something to fix, as a bad setting
    fails = [line for line in out.splitlines() if "FAIL" in line]
    assert fails and "AWS_SECRET_ACCESS_KEY" in fails[0]
    assert "wrong-secret-123" not in out and "Traceback" not in out
