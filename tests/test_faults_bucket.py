"""Bucket hygiene against the real service and SeaweedFS: old segments are deleted once no playlist
may list them (never while one does), remembered across a restart; or kept, with a VOD playlist of
the whole stream; and /metrics can live on a listener of its own."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.ports import kept_port
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.service_process import ServiceProcess, service_env
from tests.support.hls_checker import MediaPlaylistChecker
from tests.support.listing import listing
from tests.support.observe import Observed, poll
from tests.support.player_run import read_with_ffmpeg
from tests.support.whole import assert_whole
from tests.support.waiting import until

pytestmark = [pytest.mark.faults, pytest.mark.integration]


CLEANER_INTERVAL = 5.0  # broadcaster/bucket/cleaner.py's Cleaner.interval
SLACK = 5.0
START_TIMEOUT = 60.0  # a deadline for the service to serve: a loaded machine took over 20 s


async def status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as r:
        return r.status


async def test_segments_leave_the_bucket_only_after_every_playlist_let_go(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", WINDOW_SECONDS="3",
                      CLEANUP_MARGIN="0")
    seen = Observed()
    last_listed: dict[str, float] = {}
    # When the test first found a listed segment missing from its playlist: it left no later than that.
    # (The last time it was seen listed would undercount the time since it left by a poll's lag.)
    missing_since: dict[str, float] = {}
    # 6.2.2: a removed segment stays for its duration plus the longest playlist that listed it: the first
    # playlist lists Owncast's whole backlog (as long as the service was slow to start), so each segment is
    # judged by the longest playlist seen with it.
    keep: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        async with ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as service:
            async def six_due() -> list[str] | None:
                """One look at the playlists and the bucket (the oldest listed segment still there); the
                segments due to go once there are six."""
                await poll(http, service.url, owncast, seen)
                listed_now: set[str] = set()
                answered = True
                for v in (0, 1):
                    async with http.get(f"{service.url}/live/{v}/playlist.m3u8") as r:
                        answered &= r.status == 200
                        text = await r.text() if r.status == 200 else ""
                    # Its segment URIs in the bucket, oldest first, with their EXTINF durations.
                    listed = {e.uri: e.duration for e in listing(text) if e.uri.startswith("http")}
                    listed_now.update(listed)
                    length = sum(listed.values())
                    for uri, duration in listed.items():
                        keep[uri] = max(keep.get(uri, 0.0), duration + length)
                    if listed:  # the oldest listed segment is the one a cleaner would hit first
                        assert await status(http, next(iter(listed))) == 200, next(iter(listed))
                now = time.monotonic()
                for uri in listed_now:
                    last_listed[uri] = now
                if answered:  # a playlist not served this round says nothing about what left it
                    for uri in last_listed.keys() - listed_now:
                        missing_since.setdefault(uri, now)
                # Left longer ago than its keep, the 5 s between cleaner runs, and slack (a playlist
                # version the polls missed): due to go.
                gone = [u for u, t in missing_since.items() if now - t > keep[u] + CLEANER_INTERVAL + SLACK]
                return gone if len(gone) >= 6 else None

            gone: list[str] = await until(six_due, "six segments due to leave the bucket", 60, every=0.2,
                                          detail=lambda: f"missing from the playlists since {missing_since}")
            # Each due segment goes: waited for (a loaded machine runs the cleaner late), not judged at
            # one instant. That one goes too soon is the check above, on every segment still listed.
            still = gone

            async def deleted() -> bool:
                nonlocal still
                still = [u for u in gone if await status(http, u) not in (403, 404)]
                return not still

            await until(deleted, "the segments due to go deleted", 30 + SLACK, every=0.5, detail=lambda: (
                f"left the playlists and never deleted: {still} {[keep[u] for u in still]}"))
            # Some that left recently are still pending: stop now, and they must still go after a restart.
            assert await service.stop() == 0
        pending = [u for u, t in last_listed.items() if u not in gone and await status(http, u) == 200]
        async with ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as again:
            # Each goes at its due time, at the latest one failed DeleteObjects later (its retry, 30 s).
            left: list[str] = pending

            async def deleted_after_the_restart() -> bool:
                nonlocal left
                current = set()
                for v in (0, 1):
                    async with http.get(f"{again.url}/live/{v}/playlist.m3u8") as r:
                        current |= {line for line in (await r.text()).splitlines() if line.startswith("http")}
                left = [u for u in pending if u not in current and await status(http, u) == 200]
                return not left

            await until(deleted_after_the_restart, "the pending segments deleted after the restart",
                        CLEANER_INTERVAL + 30 + SLACK + max(keep.values(), default=0), every=0.5,
                        detail=lambda: f"left the playlists before the restart, not deleted after it: {left}")
            assert await again.stop() == 0
        assert service.problems() == [] and again.problems() == []


async def test_kept_stream_gets_a_vod_playlist_and_nothing_is_deleted(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", WINDOW_SECONDS="3",
                      KEEP_RECORDINGS="true", CLEANUP_MARGIN="0")
    seen = Observed()
    shortid = owncast.shortid
    async with (aiohttp.ClientSession() as http,
                ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as service):
        look = seen.at(http, service.url, owncast)
        await look.listed_in_each(10, every=0.2)
        await owncast.stop_stream(offline=True)
        vod_url = f"{seaweed.public_url}/live/recording-{shortid}.m3u8"
        async def recorded() -> bool:
            if await status(http, vod_url) == 200:
                return True
            await look.poll()
            return False

        await until(recorded, "the recording's playlist in the bucket", 20, every=0.2, detail=seen.describe)
        # The final version (with ENDLIST) is served before the recording is written; polling may have
        # stopped just before it, so read it once more for the last segments.
        await look.poll()
        assert seen.ended == {0, 1}
        async with http.get(f"{seaweed.public_url}/live/0/recording-{shortid}.m3u8") as r:
            assert r.headers["Content-Type"] == "application/vnd.apple.mpegurl"
            vod = await r.text()
        MediaPlaylistChecker(allow_playlist_type=True).assert_ok(vod)
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
        names = [line for line in vod.splitlines() if line and not line.startswith("#")]
        listed = [uri.rsplit("/", 1)[1] for n in sorted(seen.ours[0]) for uri in [seen.ours[0][n][0]]]
        assert names == listed  # the whole stream, not just the last window
        # Nothing deleted, even long after it left the window, and each the file Owncast finished writing.
        await assert_whole(http, owncast.ledger, seen.listed_files(owncast))
        player = await read_with_ffmpeg(vod_url, 60)
        assert player.exit_code == 0, player.warnings
        assert await service.stop() == 0
    assert service.problems() == []


async def test_metrics_on_a_listener_of_their_own(tmp_path: Path, seaweed: SeaweedS3) -> None:
    (tmp_path / "hls").mkdir()
    port = kept_port()
    env = service_env(tmp_path / "hls", seaweed, tmp_path / "state", METRICS_LISTEN=f"127.0.0.1:{port}")
    async with (aiohttp.ClientSession() as http,
                ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as service):
        assert await status(http, f"{service.url}/metrics") == 404
        async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.status == 200 and "hls_broadcaster_build_info" in await r.text()
        assert await status(http, f"http://127.0.0.1:{port}/live/master.m3u8") == 404
        assert await service.stop() == 0
