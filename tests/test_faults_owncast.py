"""Owncast restarts, goes offline and comes back, wipes its folder and idles: the real service
process keeps its playlists valid throughout (one checker across the whole story)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.service_process import ServiceProcess, service_env
from tests.support.hls_checker import VariantSetChecker
from tests.support.observe import Observed, Observer, health as read_health
from tests.support.owncast_writer import HandFedOwncast, real_ts_segment
from tests.support.waiting import until
from tests.support.whole import assert_whole

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as r:
        assert r.status == 200
        return await r.text()


def idle_transcoder(hls: Path, clip: bytes) -> None:
    """Owncast five minutes after a stream: wipe the folder, then its offline transcoder's EVENT playlist."""
    shutil.rmtree(hls)
    for v in (0, 1):
        (hls / str(v)).mkdir(parents=True)
        for i in range(3):
            (hls / str(v) / f"stream-offline-{i}.ts").write_bytes(clip)
        body = "".join(f"#EXTINF:5.000000,\nstream-offline-{i}.ts\n" for i in range(3))
        (hls / str(v) / "stream.m3u8").write_text(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:5\n#EXT-X-MEDIA-SEQUENCE:0\n"
            "#EXT-X-PLAYLIST-TYPE:EVENT\n" + body)


async def test_restart_offline_wipe_idle_and_back(tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    hls = owncast.variant_dir(0).parent
    env = service_env(hls, seaweed, tmp_path / "state", WINDOW_SECONDS="5")
    seen = Observed(checker=VariantSetChecker(allow_resume_after_endlist=True))
    async with aiohttp.ClientSession() as http, ServiceProcess(env, tmp_path) as service:
        look = seen.at(http, service.url, owncast)
        await look.listed_in_each(4)

        # 1. Owncast's transcoder restarts with no goodbye (crash): folder wiped, new id, numbers from 0.
        first_id = owncast.shortid
        before = max(seen.ours[0])
        await owncast.restart_stream()
        await look.until(lambda: all(any(owncast.shortid in uri for uri, _ in seen.ours[v].values())
                                     for v in (0, 1)), "the new run listed in each variant")
        playlist = await text(http, f"{service.url}/live/playlist.m3u8")
        assert owncast.shortid != first_id and "#EXT-X-DISCONTINUITY\n" in playlist
        assert min(n for n, (u, _) in seen.ours[0].items() if owncast.shortid in u) > before  # still rising
        # PROGRAM-DATE-TIME is Owncast's: the new run's dates come after the old run's.
        lines = playlist.splitlines()
        marker = lines.index("#EXT-X-DISCONTINUITY")
        dates = [datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00"))
                 for line in lines if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
        # ffmpeg dates each segment by its start plus the durations before it, which runs tens of ms ahead
        # of the clock (44 ms seen): the new run's first date may fall that much before the old run's
        # last one, never more than a fraction of a segment.
        assert all(later >= earlier - timedelta(seconds=0.5) for earlier, later in zip(dates, dates[1:])), dates
        assert lines[marker + 1].startswith("#EXT-X-PROGRAM-DATE-TIME:")

        # 2. The broadcaster disconnects: Owncast's offline tail; our playlists end.
        await look.ended()
        status, health = await read_health(http, service.url)
        assert status == 200 and health["stream"] == "ended"
        clip = (owncast.variant_dir(0) / "offline.ts").read_bytes()

        # 3. Five minutes later: the wipe and the idle transcoder. Nothing changes for viewers.
        ended = await text(http, f"{service.url}/live/playlist.m3u8")
        idle_transcoder(hls, clip)
        await until(lambda: any("stream-offline" in line for line in service.lines),
                    "the service logging stream-offline", 10, every=0.1)
        assert await text(http, f"{service.url}/live/playlist.m3u8") == ended
        status, health = await read_health(http, service.url)
        assert status == 200 and health["stream"] == "ended"

        # 4. The stream comes back: the same playlists continue after a discontinuity.
        seen.ended.clear()
        await owncast.restart_stream()
        await look.until(lambda: sum(owncast.shortid in u for u, _ in seen.ours[0].values()) >= 3,
                         "three segments of the stream back listed")
        back = await text(http, f"{service.url}/live/playlist.m3u8")
        assert "#EXT-X-ENDLIST" not in back and "#EXT-X-DISCONTINUITY" in back
        # Across both restarts, every segment listed is the file Owncast finished writing.
        await assert_whole(http, owncast.ledger, seen.listed_files(owncast))
        assert await service.stop() == 0
    assert service.problems() == []
    for v in (0, 1):  # nothing from the offline clip or the idle transcoder was ever listed
        assert not [u for u, _ in seen.ours[v].values() if "offline" in u]


async def test_variants_ffmpeg_ends_one_segment_apart_both_end(tmp_path: Path, seaweed: SeaweedS3) -> None:
    """ffmpeg stopped mid-segment can give one variant a last short segment the other never gets. The real
    service ends both playlists with EXT-X-ENDLIST, in step, that segment in neither, never waiting for the
    other variant for good (players would stand at the end without being told it ended)."""
    ts = await asyncio.to_thread(real_ts_segment, tmp_path)
    feed = HandFedOwncast(tmp_path / "hls", ts, variants=(0, 1))
    for _ in range(3):
        feed.slot()
    env = service_env(feed.root, seaweed, tmp_path / "state", WINDOW_SECONDS="10")
    async with aiohttp.ClientSession() as http, ServiceProcess(env, tmp_path / "run") as service:
        seen = Observer(service.url, http, (0, 1))
        await seen.until(lambda: all(len(seen.names(v)) == 3 for v in (0, 1)), 20, "three slots listed")
        last = feed.name(feed.number)  # variant 0 alone: its last frame, cut when ffmpeg stopped
        feed.write_segment(0, last, ts)
        feed.add_entry(0, last, duration=0.041667)
        feed.write_playlist(0)
        (tmp_path / "tmp").mkdir()
        feed.offline(ts, tmp_path / "tmp")  # Owncast's offline tail in both

        async def ended() -> bool:
            texts = [await text(http, f"{service.url}/live/{v}/playlist.m3u8") for v in (0, 1)]
            return all(t.endswith("#EXT-X-ENDLIST\n") for t in texts)

        await until(ended, "both playlists ending with EXT-X-ENDLIST", 20, every=0.1,
                    detail=lambda: {v: seen.names(v) for v in (0, 1)})
        await seen.poll()
        for v in (0, 1):  # the same slots in both, the one variant 1 never got in neither
            assert seen.names(v) == [feed.name(n) for n in range(3)], (v, seen.names(v))
        assert any("variant 1: Owncast ended it before segment" in line for line in service.lines)
        assert await service.stop() == 0
    assert service.problems() == []
