"""The Owncast emulator against the real ffmpeg: files land the way Owncast writes them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from broadcaster.demo.emulator import (LATENCY_LEVELS, Cleanup, EmulatorError, OwncastEmulator, OwncastSettings,
                                      Recordings, Variant, ffmpeg_command, resolve_settings)
from broadcaster.demo.ffmpeg import ffmpeg_exe
from tests.support.listing import listing
from tests.support.owncast_writer import owncast_number
from tests.support.processes import alive
from tests.support.waiting import until

pytestmark = pytest.mark.integration

TS_PACKET = 188


async def test_variants_segments_and_master(owncast: OwncastEmulator) -> None:
    await asyncio.gather(*(owncast.wait_for_segments(variant, 3, timeout=20) for variant in (0, 1)))
    name = re.compile(rf"stream-{re.escape(owncast.shortid)}-\d+\.ts")
    for variant in (0, 1):
        text = owncast.variant_playlist(variant).read_text()
        assert "#EXT-X-TARGETDURATION:1\n" in text
        assert "#EXT-X-INDEPENDENT-SEGMENTS" in text
        assert "#EXT-X-ENDLIST" not in text
        entries = listing(text)
        assert len(entries) >= 3 and text.count("#EXT-X-PROGRAM-DATE-TIME:") == len(entries)  # one each
        for e in entries:
            assert 0.9 <= e.duration <= 1.1, (e.uri, e.duration)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}", e.date), e.date
            assert name.fullmatch(e.uri), e.uri
            # Listed means finished: Owncast writes the segment before the playlist.
            data = (owncast.variant_dir(variant) / e.uri).read_bytes()
            assert data and len(data) % TS_PACKET == 0 and data[0] == 0x47, (e.uri, len(data))
            assert data[::TS_PACKET] == b"\x47" * (len(data) // TS_PACKET)

    master = owncast.master_playlist.read_text()
    stream_infs = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(stream_infs) == 2
    for info, resolution in zip(stream_infs, ("640x360", "320x180"), strict=True):
        assert re.search(r"[:,]BANDWIDTH=\d+", info), info
        assert f"RESOLUTION={resolution}" in info
        assert re.search(r'CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"', info), info
    assert [line for line in master.splitlines() if line.endswith(".m3u8")] == [
        "0/stream.m3u8",
        "1/stream.m3u8",
    ]


async def test_playlists_are_rewritten_in_place(owncast: OwncastEmulator) -> None:
    """Same inode, new content: truncate-and-write, never a temp file plus rename."""
    first = await owncast.wait_for_segments(0, 1, timeout=20)
    playlist = owncast.variant_playlist(0)
    inode = playlist.stat().st_ino
    await owncast.wait_for_segments(0, len(first) + 2, timeout=20)
    assert playlist.stat().st_ino == inode
    assert not [p for p in owncast.hls_dir.rglob("*") if p.is_file() and "tmp" in p.name]


async def test_slow_writes_expose_partial_files(tmp_path: Path) -> None:
    """With write_delay a reader catches what Owncast's readers can: files still being written."""
    owncast = OwncastEmulator(tmp_path / "hls", resolve_settings(variants=1))
    owncast.write_delay = 0.02
    async with owncast:
        vdir = owncast.variant_dir(0)
        seen: dict[str, int] = {}
        grew: list[str] = []
        truncated_playlist = False

        def check() -> bool:
            nonlocal truncated_playlist
            listed = set(owncast.listed_segments(0))
            for path in vdir.glob("*.ts"):
                size = path.stat().st_size
                if path.name not in listed and seen.get(path.name, size) < size:
                    grew.append(path.name)
                seen[path.name] = size
            text = owncast.variant_playlist(0).read_text() if owncast.variant_playlist(0).exists() else ""
            truncated_playlist |= bool(text) and not text.endswith("\n")
            return bool(grew) and truncated_playlist

        await until(check, "a growing segment and a truncated playlist", 20, every=0.05)
        await owncast.wait_for_segments(0, 2, timeout=20)  # ffmpeg keeps up despite the slow writes


async def test_stop_stream_appends_offline_tail(owncast: OwncastEmulator) -> None:
    await asyncio.gather(*(owncast.wait_for_segments(variant, 2, timeout=20) for variant in (0, 1)))
    inodes = [owncast.variant_playlist(v).stat().st_ino for v in (0, 1)]
    await owncast.stop_stream()
    assert owncast.ffmpeg_pid is None
    for variant in (0, 1):
        playlist = owncast.variant_playlist(variant)
        text = playlist.read_text()
        assert text.endswith("#EXT-X-DISCONTINUITY\n#EXTINF:8.000000,\noffline.ts\n#EXT-X-ENDLIST\n"), text
        assert playlist.stat().st_ino != inodes[variant]  # temp file + move, unlike ffmpeg's writes
        offline = (owncast.variant_dir(variant) / "offline.ts").read_bytes()
        assert len(offline) % TS_PACKET == 0 and offline[0] == 0x47
        live = listing(text)[:-1]
        assert live and all((owncast.variant_dir(variant) / e.uri).is_file() for e in live)


async def test_restart_wipes_folder_and_changes_shortid(owncast: OwncastEmulator) -> None:
    await owncast.wait_for_segments(0, 2, timeout=20)
    old_id = owncast.shortid
    marker = owncast.hls_dir / "left-over.txt"
    marker.write_text("x")
    await owncast.restart_stream()
    assert owncast.shortid != old_id
    assert not marker.exists()
    assert owncast.ffmpeg_pid is not None
    names = await owncast.wait_for_segments(0, 1, timeout=20)
    assert all(f"-{owncast.shortid}-" in n for n in names)
    assert owncast_number(names[0]) == 0  # numbering starts again
    on_disk = [p.name for v in (0, 1) for p in owncast.variant_dir(v).iterdir()]
    assert not [n for n in on_disk if old_id in n]


async def test_fmp4_segments_with_init(tmp_path: Path) -> None:
    async with OwncastEmulator(tmp_path / "hls", segment_type="fmp4") as owncast:
        names = await owncast.wait_for_segments(0, 2, timeout=20)
        await owncast.wait_for_segments(1, 2, timeout=20)
        for variant in (0, 1):
            text = owncast.variant_playlist(variant).read_text()
            maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
            assert maps == [f"init_{variant}.mp4"]
            init = (owncast.variant_dir(variant) / maps[0]).read_bytes()
            assert init[4:8] == b"ftyp" and b"moov" in init
        for name in names:
            assert name.endswith(".m4s")
            assert b"moof" in (owncast.variant_dir(0) / name).read_bytes()
        await owncast.stop_stream()
        tail = owncast.variant_playlist(0).read_text().split("#EXT-X-DISCONTINUITY\n")[-1]
        assert (
            tail == '#EXT-X-MAP:URI="offline-init.mp4"\n#EXTINF:8.000000,\noffline-v2.m4s\n#EXT-X-ENDLIST\n'
        )
        assert (owncast.variant_dir(0) / "offline-init.mp4").read_bytes()[4:8] == b"ftyp"
        assert b"moof" in (owncast.variant_dir(0) / "offline-v2.m4s").read_bytes()


async def test_cleanup_keeps_newest_segments(tmp_path: Path) -> None:
    async with OwncastEmulator(tmp_path / "hls", resolve_settings(variants=1, list_size=2),
                               cleanup=Cleanup(keep=3, interval=0.3)) as owncast:
        vdir = owncast.variant_dir(0)

        def newest_listed() -> int:
            names = owncast.listed_segments(0)
            return owncast_number(names[-1]) if names else -1

        await until(lambda: newest_listed() >= 6, "segment 6 to be listed", 30, every=0.05)
        await until(lambda: not (vdir / f"stream-{owncast.shortid}-0.ts").exists(), "cleanup", 5, every=0.05)
        await owncast.stop_stream(offline=False)
        owncast.cleanup_old_segments()
        kept = sorted(owncast_number(p.name) for p in vdir.glob("*.ts"))
        newest = newest_listed()
        assert kept == [newest - 2, newest - 1, newest]
        # ffmpeg itself never deletes: a segment that fell out of the 2-entry playlist stays on disk.
        assert newest - 2 not in [owncast_number(n) for n in owncast.listed_segments(0)]


async def test_receiver_refuses_paths_outside_hls_dir(owncast: OwncastEmulator) -> None:
    base = f"http://127.0.0.1:{owncast.port}"
    async with aiohttp.ClientSession() as http:
        for raw in (
            "/../escaped.ts", "/%2E%2E/escaped.ts", "/0/%2E%2E/%2E%2E/escaped.ts", "/..%2Fescaped.ts",
        ):
            async with http.put(URL(base + raw, encoded=True), data=b"x") as resp:
                assert resp.status == 403, raw
        async with http.get(base + "/0/stream.m3u8") as resp:
            assert resp.status == 400  # Owncast's receiver only takes PUT
    assert not (owncast.hls_dir.parent / "escaped.ts").exists()


async def test_unexpected_ffmpeg_exit_is_reported(owncast: OwncastEmulator) -> None:
    await owncast.wait_for_segments(0, 1, timeout=20)
    pid = owncast.ffmpeg_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EmulatorError, match=r"exited unexpectedly with code -9"):
        await owncast.wait_for_segments(0, 1000, timeout=10)
    await owncast.restart_stream()  # and it can go on
    await owncast.wait_for_segments(0, 1, timeout=20)


@pytest.mark.parametrize("passthrough", [False, True])
async def test_close_leaves_no_process(tmp_path: Path, passthrough: bool) -> None:
    owncast = OwncastEmulator(tmp_path / "hls",
                              resolve_settings(variants=[Variant(320, 180, 250, passthrough=passthrough)]))
    await owncast.start()
    pids = [owncast.ffmpeg_pid] + ([owncast.source_pid] if passthrough else [])
    port = owncast.port
    assert all(pid is not None and alive(pid) for pid in pids)
    await owncast.close()
    await owncast.close()  # idempotent
    assert not any(alive(pid) for pid in pids if pid is not None)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
async def test_ffmpeg_dies_with_a_killed_python(tmp_path: Path) -> None:
    """A SIGKILLed test process leaves no ffmpeg behind, nor the broadcaster feeding a passthrough variant."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from broadcaster.demo.emulator import EmulatorError, OwncastEmulator, Variant, resolve_settings

        async def main():
            owncast = OwncastEmulator(Path({str(tmp_path / "hls")!r}))
            source = [Variant(320, 180, 250, passthrough=True)]
            copied = OwncastEmulator(Path({str(tmp_path / "hls2")!r}), resolve_settings(source))
            await owncast.start()
            await copied.start()
            print(owncast.ffmpeg_pid, copied.ffmpeg_pid, copied.source_pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, env=env
    )
    out, _ = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == -signal.SIGKILL
    pids = [int(word) for word in out.split()]
    assert len(pids) == 3
    try:
        await until(lambda: not any(alive(pid) for pid in pids), f"ffmpegs {pids} to die", 5, every=0.05)
    finally:
        for pid in pids:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)


# --- settings an operator changes (docs/owncast.md) ----------------------------------------------


def target_duration(text: str) -> int | None:
    match = re.search(r"^#EXT-X-TARGETDURATION:(\d+)$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def argv_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_latency_levels_are_owncasts() -> None:
    # models/latencyLevels.go, GetLatencyConfigs
    assert LATENCY_LEVELS == {0: (1, 25), 1: (2, 15), 2: (3, 10), 3: (4, 8), 4: (5, 5)}
    for level, (seconds, count) in LATENCY_LEVELS.items():
        variants = (Variant(640, 360, 800, framerate=24), Variant(320, 180, 250, passthrough=True))
        argv = ffmpeg_command("ffmpeg", "http://x", "id", OwncastSettings(variants, seconds, count), "mpegts",
                              source=variants[1])
        assert argv_value(argv, "-hls_time") == str(seconds)
        assert argv_value(argv, "-hls_list_size") == str(count)
        # A keyframe every segment in transcoded variants; the copied one keeps the source's.
        assert argv_value(argv, "-g:v:0") == argv_value(argv, "-keyint_min:v:0") == str(24 * seconds)
        assert argv_value(argv, "-c:v:1") == "copy" and "-g:v:1" not in argv
        assert argv_value(argv, "-i") == "pipe:0"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="latency_level must be one of"):
        OwncastEmulator(Path("x"), resolve_settings(latency_level=5))
    with pytest.raises(ValueError, match="not both"):
        OwncastEmulator(Path("x"), resolve_settings(latency_level=1, segment_seconds=2))
    with pytest.raises(ValueError, match="same size"):
        copied = [Variant(640, 360, 800, passthrough=True), Variant(320, 180, 250, passthrough=True)]
        OwncastEmulator(Path("x"), resolve_settings(variants=copied))
    with pytest.raises(ValueError, match="source_keyframes"):
        OwncastEmulator(Path("x"), resolve_settings(source_keyframes=[]))


def test_configure_keeps_what_is_not_given() -> None:
    owncast = OwncastEmulator(Path("x"), resolve_settings(latency_level=4))
    assert (owncast.segment_seconds, owncast.list_size, owncast.cleanup_keep) == (5, 5, 15)
    owncast.configure(variants=3)
    assert owncast.next_settings.latency_level == 4 and len(owncast.next_settings.variants) == 3
    owncast.configure(list_size=6)
    assert (owncast.next_settings.segment_seconds, owncast.next_settings.list_size) == (5, 6)
    assert owncast.next_settings.latency_level is None
    owncast.configure(latency_level=0)
    assert (owncast.next_settings.segment_seconds, owncast.next_settings.list_size) == (1, 25)
    assert (owncast.segment_seconds, len(owncast.variants)) == (5, 2)  # not started: nothing applied yet


async def test_each_latency_level_cuts_its_segment_length(tmp_path: Path) -> None:
    """Real ffmpeg per level, all at once (one small variant each): EXTINF and target duration."""
    async with contextlib.AsyncExitStack() as stack:
        small = [Variant(320, 180, 250)]
        emulators = {
            level: await stack.enter_async_context(
                OwncastEmulator(tmp_path / str(level), resolve_settings(variants=small, latency_level=level))
            )
            for level in LATENCY_LEVELS
        }
        await asyncio.gather(*(e.wait_for_segments(0, 2, timeout=40) for e in emulators.values()))
        for level, owncast in emulators.items():
            seconds = LATENCY_LEVELS[level][0]
            text = owncast.variant_playlist(0).read_text()
            assert target_duration(text) == seconds, (level, text)
            durations = [e.duration for e in listing(text)]
            assert durations and all(abs(d - seconds) < 0.05 for d in durations), (level, durations)


async def test_passthrough_copies_irregular_keyframes(tmp_path: Path) -> None:
    """The copied variant is cut at the broadcaster's keyframes and ffmpeg raises its target
    duration as longer ones come; the transcoded one stays regular; the multivariant playlist
    comes only once every variant has a playlist."""
    variants = [Variant(640, 360, 1200, passthrough=True, audio_passthrough=True), Variant(320, 180, 250)]
    owncast = OwncastEmulator(tmp_path / "hls",
                              resolve_settings(variants=variants, latency_level=0, source_keyframes=[1, 3, 2]))
    copied, transcoded = owncast.variant_playlist(0), owncast.variant_playlist(1)
    targets: list[int] = []
    master_before_variants = False

    def watch() -> bool:
        nonlocal master_before_variants
        if owncast.master_playlist.exists() and not (copied.exists() and transcoded.exists()):
            master_before_variants = True
        text = copied.read_text() if copied.exists() else ""
        if text.endswith("\n") and (td := target_duration(text)) is not None and td not in targets[-1:]:
            targets.append(td)
        return len(owncast.listed_segments(0)) >= 3

    async with owncast:
        pids = [owncast.ffmpeg_pid, owncast.source_pid]
        assert all(pid is not None and alive(pid) for pid in pids)
        await until(watch, "three copied segments", 30, every=0.05)
        assert not master_before_variants
        durations = [e.duration for e in listing(copied.read_text())]
        assert [round(d, 1) for d in durations[:3]] == [1.0, 3.0, 2.0]
        assert targets[:2] == [1, 3], targets  # rose within the stream, in the same playlist
        regular = [e.duration for e in listing(transcoded.read_text())]
        assert len(regular) >= 4 and all(abs(d - 1.0) < 0.05 for d in regular)
        master = owncast.master_playlist.read_text()
        uris = [line for line in master.splitlines() if line.endswith(".m3u8")]
        assert uris == ["0/stream.m3u8", "1/stream.m3u8"]
        assert "RESOLUTION=640x360" in master and "RESOLUTION=320x180" in master
        await owncast.stop_stream()  # the broadcaster leaves; ffmpeg ends with its input
        assert not any(alive(pid) for pid in pids if pid is not None)
        assert copied.read_text().endswith("#EXT-X-ENDLIST\n")


async def test_configure_applies_at_restart(tmp_path: Path) -> None:
    async with OwncastEmulator(tmp_path / "hls", resolve_settings(variants=1)) as owncast:
        await owncast.wait_for_segments(0, 1, timeout=20)
        pid = owncast.ffmpeg_pid
        two = [Variant(640, 360, 800), Variant(320, 180, 250, framerate=24)]
        owncast.configure(variants=two, latency_level=1)
        await owncast.wait_for_segments(0, 3, timeout=20)
        assert owncast.ffmpeg_pid == pid  # the stream on air is not disturbed
        assert target_duration(owncast.variant_playlist(0).read_text()) == 1
        assert not owncast.variant_dir(1).exists() and owncast.segment_seconds == 1
        await owncast.restart_stream()
        assert (owncast.latency_level, owncast.segment_seconds, owncast.list_size) == (1, 2, 15)
        for variant in (0, 1):
            names = await owncast.wait_for_segments(variant, 1, timeout=20)
            assert all(f"-{owncast.shortid}-" in n for n in names)
            text = owncast.variant_playlist(variant).read_text()
            assert target_duration(text) == 2
            assert [round(e.duration, 1) for e in listing(text)] == [2.0] * len(names)
        await until(owncast.master_playlist.exists, "the multivariant playlist", 10, every=0.05)


# -- the transcoder's encoding replayed (broadcaster/demo/recordings.py) ---------------------------------


def stream_lines(segment: Path) -> list[str]:
    """What ffmpeg finds in a segment: its streams (codec, profile, size, rate, layout), figures that
    vary between runs (bitrates, the first timestamp to the microsecond) left out."""
    done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(segment)], capture_output=True, text=True,
                          timeout=60)
    found = [re.sub(r"\[0x[0-9a-f]+\]|, \d+ kb/s|\d+(\.\d+)? tbr, |, start [\d.]+", "", line.strip())
             for line in done.stderr.splitlines() if line.strip().startswith("Stream #")]
    assert found, done.stderr
    return found


def playlist_shape(text: str) -> list[str]:
    """A playlist's lines with what differs between runs (names, dates, numbers, bandwidths) masked."""
    text = re.sub(r"stream-[\w-]+-\d+\.ts", "<segment>", text)
    text = re.sub(r"(PROGRAM-DATE-TIME:|MEDIA-SEQUENCE:|BANDWIDTH=)[^,\n]+", r"\1<n>", text)
    return text.splitlines()


async def test_a_replayed_stream_is_written_as_a_live_one(tmp_path: Path, recordings: Recordings) -> None:
    """The same streams in each segment, the same playlists and master but for names, dates and measured
    bandwidths, the segments cut as long; the encoding made at most once for both replays."""
    made = recordings.made
    async with (OwncastEmulator(tmp_path / "live") as live,
                OwncastEmulator(tmp_path / "replay", recordings=recordings) as replay,
                OwncastEmulator(tmp_path / "again", recordings=recordings) as again):
        assert (live.replaying, replay.replaying, again.replaying) == (False, True, True)
        assert recordings.made - made <= 1  # a second replay found it made
        await asyncio.gather(*(e.wait_for_segments(v, 4, timeout=60) for e in (live, replay) for v in (0, 1)))
        for v in (0, 1):
            shapes = [playlist_shape(e.variant_playlist(v).read_text())[:12] for e in (live, replay)]
            assert shapes[0] == shapes[1], shapes
            segments = [e.variant_dir(v) / e.listed_segments(v)[1] for e in (live, replay)]
            assert stream_lines(segments[0]) == stream_lines(segments[1])
        masters = [e.master_playlist.read_text() for e in (live, replay)]
        assert playlist_shape(masters[0]) == playlist_shape(masters[1])  # BANDWIDTH: the live one's from its
        # encoder's settings, the replay's measured from the recording (as Owncast's own is, by ffmpeg)
        pid = replay.ffmpeg_pid
        await replay.stop_stream()  # SIGTERM: the muxer ends its segment and playlist, then the offline tail
        assert pid is not None and not alive(pid)
        assert replay.variant_playlist(0).read_text().endswith("offline.ts\n#EXT-X-ENDLIST\n")
