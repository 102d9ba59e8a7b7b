"""A private stream on real parts: the service as an operator runs it (`python -m broadcaster run`,
PRIVATE=true, PATHWAYS=bucket,vm), SeaweedFS, the Owncast emulator's ffmpeg. Every door answers 401
without a token and 403 with a bad one, saying nothing of the stream, and lets a viewer with a token in
(a table); media playlists are the same bytes for two viewers and list each segment with the edge token,
which also opens the VM's segment door; /health and /metrics answer as for a public stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until

pytestmark = pytest.mark.integration

SECRET = "s" * 48
PASSPHRASE = "the pass-phrase"


@pytest.fixture
async def private(tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3) -> AsyncIterator[ServiceProcess]:
    async with OwncastEmulator(tmp_path / "hls", segment_seconds=1, recordings=recordings):
        env = service_env(tmp_path / "hls", seaweed, tmp_path / "state", WINDOW_SECONDS="6", PRIVATE="true",
                          PRIVATE_SECRET=SECRET, PRIVATE_PASSPHRASE=PASSPHRASE, PATHWAYS="bucket,vm")
        async with ServiceProcess(env, tmp_path / "service") as service:
            yield service


async def get(http: aiohttp.ClientSession, url: str, token: str | None = None,
              method: str = "GET", **kwargs: object) -> tuple[int, bytes]:
    if token is not None:
        url += ("&" if "?" in url else "?") + f"access={token}"
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:  # type: ignore[arg-type]
        if response.content_type == "text/event-stream":
            return response.status, b""  # its head is the answer: the stream itself goes on
        return response.status, await response.read()


async def test_every_door_asks_for_a_token_and_lets_a_viewer_in(private: ServiceProcess) -> None:
    base = private.url
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
        media = (await get(http, f"{base}/live/0/playlist.m3u8", token))[1]
        assert media == (await get(http, f"{base}/live/0/playlist.m3u8", other))[1]  # one for every viewer
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
        # The VM's segment at the URI its playlist lists: the edge token there opens it, no viewer token;
        # while the bucket serves it sends the player to the bucket's copy, edge token and all.
        async with http.get(base + vm_segment, allow_redirects=False) as response:
            assert response.status in (200, 302)
            if response.status == 302:
                assert "?verify=" in response.headers["Location"]
                async with http.get(response.headers["Location"]) as copy:  # SeaweedFS: no edge, no check
                    assert copy.status == 200 and len(await copy.read()) > 1000
        master = (await get(http, f"{base}/live/master.m3u8", token))[1].decode()
        assert f"0/playlist.m3u8?access={token}" in master and f"steering.json?access={token}" in master
        # The operator's readings, as without the gate.
        assert (await get(http, f"{base}/health"))[0] == 200
        assert (await get(http, f"{base}/metrics"))[0] == 200
        # The page is anyone's and says the stream is private, naming nothing of it.
        status, config = await get(http, f"{base}/config.json")
        assert status == 200 and json.loads(config)["private"] is True
