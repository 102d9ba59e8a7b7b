"""A private stream on real parts (PRIVATE=true, PATHWAYS=bucket,vm): every door answers 401 without a
token and 403 with a bad one, saying nothing, and lets a viewer with one in; media playlists are the same
for two viewers, with the edge token; an invite made and revoked while running lets in, then is refused;
/health and /metrics answer as for a public stream."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.service_process import ServiceProcess, service_env, with_this_code
from tests.support.waiting import until

pytestmark = pytest.mark.integration

SECRET = "s" * 48
PASSPHRASE = "the pass-phrase"


@dataclass
class Private:
    service: ServiceProcess
    env: dict[str, str]  # its settings, as `hls-broadcaster invite` reads them too


@pytest.fixture
async def private(tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3) -> AsyncIterator[Private]:
    async with OwncastEmulator(tmp_path / "hls", resolve_settings(segment_seconds=1), recordings=recordings):
        env = service_env(tmp_path / "hls", seaweed, tmp_path / "state", WINDOW_SECONDS="6", PRIVATE="true",
                          PRIVATE_SECRET=SECRET, PRIVATE_PASSPHRASE=PASSPHRASE, PATHWAYS="bucket,vm")
        async with ServiceProcess(env, tmp_path / "service") as service:
            yield Private(service, env)


def invite(private: Private, *args: str) -> str:
    """`hls-broadcaster invite ...` as the operator runs it beside the service: its output."""
    done = subprocess.run([sys.executable, "-m", "broadcaster", "invite", *args], env=with_this_code(private.env),
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


async def get(http: aiohttp.ClientSession, url: str, token: str | None = None,
              method: str = "GET", **kwargs: object) -> tuple[int, bytes]:
    if token is not None:
        url += ("&" if "?" in url else "?") + f"access={token}"
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:  # type: ignore[arg-type]
        if response.content_type == "text/event-stream":
            return response.status, b""  # its head is the answer: the stream itself goes on
        return response.status, await response.read()


async def test_every_door_asks_for_a_token_and_lets_a_viewer_in(private: Private) -> None:
    base = private.service.url
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/live/access", json={"passphrase": PASSPHRASE}) as granted:
            assert granted.status == 200
            token = (await granted.json())["token"]
        async with http.post(f"{base}/live/access", json={"token": token}) as renewed:
            other = (await renewed.json())["token"]

        async def listed() -> bool:
            status, body = await get(http, f"{base}/live/vm/0/playlist.m3u8", token)
            return status == 200 and body.count(b".ts") >= 2
        await until(listed, "the VM pathway's playlist listing segments", 30)
        media = b""

        async def one_for_every_viewer() -> bool:  # asked back to back: unless a segment was listed between
            nonlocal media
            media = (await get(http, f"{base}/live/0/playlist.m3u8", token))[1]
            return media == (await get(http, f"{base}/live/0/playlist.m3u8", other))[1]
        await until(one_for_every_viewer, "two viewers' media playlists the same bytes", 10)
        async with http.get(f"{base}/live/0/playlist.m3u8", headers={"Authorization": f"Bearer {other}"}) as header:
            assert header.status == 200 and (await header.read()).startswith(b"#EXTM3U")  # a player adding headers
        segments = [line for line in media.decode().splitlines() if line and not line.startswith("#")]
        assert segments and all("?verify=" in uri for uri in segments)
        vm_media = (await get(http, f"{base}/live/vm/0/playlist.m3u8", token))[1].decode()
        vm_segment = [line for line in vm_media.splitlines() if line and not line.startswith("#")][-1]
        assert "?verify=" in vm_segment
        newest = int(next(line for line in media.decode().splitlines()
                          if line.startswith("#EXT-X-MEDIA-SEQUENCE:")).partition(":")[2])
        doors = ["/live/master.m3u8", "/live/playlist.m3u8", "/live/0/playlist.m3u8",
                 f"/live/0/playlist.m3u8?_HLS_msn={newest}", "/hls/stream.m3u8", "/hls/0/stream.m3u8",
                 "/live/steering.json", "/live/vm/0/playlist.m3u8", vm_segment.partition("?")[0], "/live/events"]
        for door in doors:
            assert (await get(http, base + door))[0] == 401, door
            status, body = await get(http, base + door, "v1.1.-.forged")
            assert status == 403 and set(json.loads(body)) == {"error"}, door
            # The VM's segment while the bucket serves: a redirect to the bucket's copy, at its listed URI.
            assert (await get(http, base + door, token))[0] in ((200, 302) if door.endswith(".ts") else (200,)), door
        beat = {"Hb-Watching": "a1b2c3d4e5f6a7b8"}
        assert (await get(http, f"{base}/live/watching", method="POST", headers=beat))[0] == 401
        assert (await get(http, f"{base}/live/watching", token, method="POST", headers=beat))[0] == 200
        # The edge token opens the VM's segment; while the bucket serves, a redirect there.
        async with http.get(base + vm_segment, allow_redirects=False) as response:
            assert response.status in (200, 302)
            if response.status == 302:
                assert "?verify=" in response.headers["Location"]
                async with http.get(response.headers["Location"]) as copy:  # SeaweedFS: no edge, no check
                    assert copy.status == 200 and len(await copy.read()) > 1000
        master = (await get(http, f"{base}/live/master.m3u8", token))[1].decode()
        assert f"0/playlist.m3u8?access={token}" in master and f"steering.json?access={token}" in master
        # No token asked; no edge rule in front of SeaweedFS, so /health says a stranger gets segments.
        async def edge_open() -> bool:
            status, body = await get(http, f"{base}/health")
            return status == 503 and b"answer without a token at their public URL" in body

        await until(edge_open, "/health naming the public URL that serves strangers")
        assert (await get(http, f"{base}/metrics"))[0] == 200
        # An invite made by the command while the service runs lets in; revoked, its renewal is refused.
        link = invite(private, "add", "guest", "--days", "1").splitlines()[-1]
        async with http.post(f"{base}/live/access", json={"invite": link.partition("?invite=")[2]}) as redeemed:
            assert redeemed.status == 200
            guest = (await redeemed.json())["token"]
        assert (await get(http, f"{base}/live/0/playlist.m3u8", guest))[0] == 200
        invite(private, "revoke", "guest")

        async def revoked() -> bool:  # the service looks at the file again within a second
            async with http.post(f"{base}/live/access", json={"token": guest}) as renewal:
                return renewal.status == 403 and (await renewal.json())["error"] == "this invite was revoked"
        await until(revoked, "the revoked invite refused", 10)

        async def reload_refused() -> bool:  # its reloads too, answered before aiohttp
            return (await get(http, f"{base}/live/0/playlist.m3u8", guest))[0] == 403
        await until(reload_refused, "the revoked invite's reload refused", 10)
        # The page is anyone's and says the stream is private, naming nothing of it.
        status, config = await get(http, f"{base}/config.json")
        assert status == 200 and json.loads(config)["private"] is True
