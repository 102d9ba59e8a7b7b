"""Clips: VOD playlists over segments already in the bucket, made by the operator through
the control socket, kept from the cleaner, kept across restarts."""

from __future__ import annotations

from broadcaster.demo.recordings import Recordings
from broadcaster.state.disk import dumps

import asyncio
import json
import logging
import os
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from broadcaster.bucket.cleaner import Cleaner
from broadcaster.clips.book import ClipBook, ClipPlaces, ClipError, parse_time
from broadcaster.demo.emulator import OwncastEmulator, resolve_settings
from broadcaster.http.control import create_control_app, prepare_socket
from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.metrics import Metrics
from broadcaster.playlist.segments import Removed
from broadcaster.settings import MOST_CLIPS, load_settings
from broadcaster.state.disk import StateFile
from tests.support.clip_source import PREFIX, T0, Bucket, Source, seg
from tests.support.fakes import Clock
from tests.support.owncast_writer import emulator_paused
from tests.support.service_process import running_service, service_env
from tests.support.waiting import until as wait_until


def book_for(tmp_path: Path, source: Source, bucket: Bucket, cleaner: Cleaner | None = None,
             public_url: str | None = "https://cdn.example", max_clips: int = MOST_CLIPS) -> ClipBook:
    (tmp_path / "state").mkdir(exist_ok=True)
    return ClipBook(StateFile(tmp_path / "state", "clips.json"), bucket, bucket, source, lambda: None,
                    ClipPlaces(PREFIX, public_url, max_clips=max_clips), holder=cleaner)


async def test_a_clip_of_the_last_seconds_lists_the_segments_where_they_are(tmp_path: Path) -> None:
    bucket = Bucket()
    book = book_for(tmp_path, Source(), bucket)
    clip = await book.make(last=5)
    assert clip.url == f"https://cdn.example/{PREFIX}/clips/{clip.id}/master.m3u8"
    assert (clip.start, clip.end) == (T0 + 15, T0 + 20)
    assert sorted(clip.keys) == sorted(f"{PREFIX}/{v}/stream-a-{i}.ts" for v in (0, 1) for i in range(15, 20))
    media = bucket.objects[f"{PREFIX}/clips/{clip.id}/0/playlist.m3u8"].decode()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in media and media.rstrip().endswith("#EXT-X-ENDLIST")
    # From PREFIX/clips/<id>/0/ three folders up is PREFIX/: the segment objects themselves.
    assert [line for line in media.splitlines() if not line.startswith("#")] == [
        f"../../../0/stream-a-{i}.ts" for i in range(15, 20)]
    assert "#EXT-X-PROGRAM-DATE-TIME:" in media
    master = bucket.objects[f"{PREFIX}/clips/{clip.id}/master.m3u8"].decode()
    assert "0/playlist.m3u8" in master and "1/playlist.m3u8" in master


async def test_a_clip_is_cut_from_what_clients_were_shown_not_from_what_is_listed_since(tmp_path: Path) -> None:
    """Segments listed after the version clients see (their version waits for its save) are in no clip:
    the clip would name moments no viewer could have seen, and numbers a restart may give out again."""
    bucket, source = Bucket(), Source()
    source.add(20)
    source.add(21)  # listed, not yet saved and shown
    book = book_for(tmp_path, source, bucket)
    assert book.span() == (T0, T0 + 20)
    clip = await book.make(last=3)
    assert (clip.start, clip.end) == (T0 + 17, T0 + 20)
    assert not any(k.endswith(("stream-a-20.ts", "stream-a-21.ts")) for k in clip.keys)
    source.show()
    assert book.span() == (T0, T0 + 22)


async def test_clips_by_time_are_bounded_by_the_window_with_one_line_errors(tmp_path: Path) -> None:
    book = book_for(tmp_path, Source(), Bucket())
    clip = await book.make(start=T0 + 3.5, end=T0 + 6)
    assert (clip.start, clip.end) == (T0 + 3, T0 + 6)  # whole segments that overlap the range
    with pytest.raises(ClipError, match="is before the window: the window holds .* to .* \\(REWIND_SECONDS\\)"):
        await book.make(start=T0 - 10, end=T0 + 2)
    with pytest.raises(ClipError, match="after the live edge"):
        await book.make(start=T0 + 25, end=T0 + 30)
    with pytest.raises(ClipError, match="must end after it starts"):
        await book.make(start=T0 + 5, end=T0 + 5)
    with pytest.raises(ClipError, match="list nothing yet"):
        await book_for(tmp_path, Source(count=0), Bucket()).make(last=5)
    with pytest.raises(ClipError, match="SEGMENT_URLS=presigned"):
        await book_for(tmp_path, Source(), Bucket(), public_url=None).make(last=5)
    assert parse_time("2026-11-23T14:00:00Z") == parse_time("1795442400") == 1_795_442_400.0
    with pytest.raises(ClipError, match="not a time"):
        parse_time("yesterday")


async def test_the_cleaner_keeps_what_a_clip_lists_until_the_clip_is_deleted(tmp_path: Path) -> None:
    bucket, clock = Bucket(), Clock(T0 + 100)
    cleaner = Cleaner(bucket, Metrics(), margin=0, wall_clock=clock)
    source = Source()
    book = book_for(tmp_path, source, bucket, cleaner)
    clip = await book.make(start=T0 + 2, end=T0 + 4)  # segments 2 and 3 of both variants
    gone = [Removed(seg(v, i), 0, 1.0) for v in (0, 1) for i in range(6)]
    cleaner.schedule(gone)
    clock.t += 5
    await cleaner.run_once()
    kept = {f"{PREFIX}/{v}/stream-a-{i}.ts" for v in (0, 1) for i in (2, 3)}
    assert set(bucket.deleted) == {r.segment.key for r in gone} - kept
    assert cleaner.kept == 4
    # A restart: the cleaner's saved list still names the kept keys, and the clips hold them again.
    restarted = Cleaner(bucket, Metrics(), margin=0, wall_clock=clock)
    restarted.restore(json.loads(dumps({"c": cleaner.snapshot()}))["c"])
    again = book_for(tmp_path, source, bucket, restarted)
    again.load()
    assert [c.id for c in again.clips()] == [clip.id]
    bucket.deleted.clear()
    await restarted.run_once()
    assert bucket.deleted == [] and restarted.kept == 4
    await again.delete(clip.id)
    assert f"{PREFIX}/clips/{clip.id}/master.m3u8" in bucket.deleted
    bucket.deleted.clear()
    await restarted.run_once()
    assert set(bucket.deleted) == kept and restarted.kept == 0
    assert again.clips() == [] and json.loads((tmp_path / "state" / "clips.json").read_text())["clips"] == []


# -- hostile or mistaken input: the control socket's requests, its folder, clips.json --------------------

@pytest.mark.parametrize("body", [
    '{"from": -1e308, "to": 1e308}', '{"from": 1e308, "to": 1e308}', '{"from": NaN, "to": 1}',
    '{"from": 1, "to": Infinity}', '{"last": -Infinity}', '{"last": 1e308}', '{"last": 1' + "0" * 400 + '}',
    '{"from": -' + "9" * 400 + ', "to": 1}', '{"last": "30"}', '{"last": true}', '{"from": [1], "to": 2}',
    '{"from": {}, "to": 2}', '{"from": 253402300800, "to": 253402300801}',
])
async def test_a_clip_request_out_of_range_is_a_400_with_one_line(
        tmp_path: Path, aiohttp_client: AiohttpClient, body: str) -> None:
    client = await aiohttp_client(create_control_app(book_for(tmp_path, Source(), Bucket())))
    async with client.post("/clips", data=body, headers={"Content-Type": "application/json"}) as r:
        answer = await r.json()
        assert r.status == 400, answer
    assert isinstance(answer["error"], str) and "\n" not in answer["error"]
    assert "must be a number of seconds" in answer["error"], answer
    assert book_for(tmp_path, Source(), Bucket()).clips() == []


async def test_the_control_folder_is_refused_when_it_is_a_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (tmp_path / "control").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="control is not a folder but a symlink or a file: remove it"):
        prepare_socket(tmp_path)
    assert oct(elsewhere.stat().st_mode & 0o777) == oct(0o755)  # not chmodded through the link
    (tmp_path / "control").unlink()
    path = prepare_socket(tmp_path)  # made afresh: a private folder
    assert path.parent.is_dir() and not path.parent.is_symlink()
    assert path.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
async def test_the_control_folder_is_refused_when_another_user_owns_it(tmp_path: Path) -> None:
    folder = tmp_path / "control"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    os.chown(folder, 12345, 12345)
    with pytest.raises(ValueError, match="belongs to uid 12345, not to the service's user"):
        prepare_socket(tmp_path)
    assert folder.stat().st_mode & 0o777 == 0o777 and folder.stat().st_uid == 12345  # left as it was


async def test_past_max_clips_a_new_clip_is_refused_with_one_line(tmp_path: Path) -> None:
    book = book_for(tmp_path, Source(), Bucket(), max_clips=2)
    for _ in range(2):
        await book.make(last=3)
    with pytest.raises(ClipError, match="^2 clips kept, the most MAX_CLIPS allows: delete one"):
        await book.make(last=3)
    await book.delete(book.clips()[0].id)
    await book.make(last=3)  # room again
    assert len(book.clips()) == 2


async def test_a_damaged_or_oversized_clips_file_keeps_what_it_can_read_and_says_what_it_dropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket, clock = Bucket(), Clock(T0 + 100)
    cleaner = Cleaner(bucket, Metrics(), margin=0, wall_clock=clock)
    book = book_for(tmp_path, Source(), bucket)
    made = [await book.make(start=T0 + i, end=T0 + i + 1) for i in range(4)]
    path = tmp_path / "state" / "clips.json"
    data = json.loads(path.read_text())
    data["clips"][1]["start"] = "yesterday"  # damaged
    data["clips"].insert(2, dict(data["clips"][0]))  # listed twice
    path.write_text(json.dumps(data))
    monkeypatch.setattr("broadcaster.clips.book.MOST_CLIPS", 4)  # the 5th entry is beyond what is read
    caplog.set_level(logging.INFO, logger="broadcaster")
    again = book_for(tmp_path, Source(), bucket, cleaner)
    again.load()
    assert [c.id for c in again.clips()] == [made[0].id, made[2].id]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert "dropped 3 clip(s), 2 unreadable (first: " in lines[0] and "1 beyond the first 4" in lines[0]
    assert "kept 2" in lines[0] and "copied to" in lines[0]
    copies = list(path.parent.glob("clips.json.dropped-*"))
    assert len(copies) == 1 and json.loads(copies[0].read_text()) == data  # the file as it was
    assert path.exists()  # not set aside: the clips read are kept, and held from the cleaner
    cleaner.schedule([Removed(seg(0, 2), 0, 1.0), Removed(seg(0, 1), 0, 1.0)])
    clock.t += 5
    await cleaner.run_once()
    assert bucket.deleted == [f"{PREFIX}/0/stream-a-1.ts"]  # clip 2's segment is held, clip 1's is not


# -- the real service, ffmpeg and the CLI --------------------------------------------------------------

REWIND = "8"


def cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broadcaster", "clip", *args, "--state-dir", str(state_dir)],
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)


async def run_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, state_dir, *args)


async def keys_in(s3: SeaweedS3) -> set[str]:
    async with s3.client() as client:
        found: set[str] = set()
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
            found |= {o["Key"] for o in page.get("Contents", [])}
        return found


async def sizes_of(s3: SeaweedS3, keys: tuple[str, ...]) -> dict[str, int]:
    async with s3.client() as client:
        return {k: (await client.head_object(Bucket=s3.bucket, Key=k))["ContentLength"] for k in keys}


@pytest.mark.integration
async def test_a_clip_from_the_cli_plays_in_ffmpeg_outlives_the_window_and_a_restart(
        tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3) -> None:
    short_state = tmp_path / "s"  # the control socket's path must stay under 108 bytes
    env = service_env(tmp_path / "hls", seaweed, short_state, REWIND_SECONDS=REWIND, WINDOW_SECONDS="4",
                      CLEANUP_MARGIN="0")
    async with OwncastEmulator(tmp_path / "hls", resolve_settings(segment_seconds=1), recordings=recordings) as owncast, \
            AsyncExitStack() as running:
        settings = load_settings(environ=env)  # once Owncast's folder exists
        service = await running.enter_async_context(running_service(settings))
        await owncast.wait_for_segments(0, 6, timeout=30)
        await wait_until(lambda: (service.clips.span() or (0, 0))[1] - (service.clips.span() or (0, 0))[0] >= 5,
                         timeout=30, what="5 s listed")
        # Owncast paused from the clip's making to the restart's end, so the 4 s window cannot slide past
        # the clip however long the CLI (a Python process: seconds on a loaded machine, where the window
        # had moved past the clip's first segment by the restart) and the restart take.
        with emulator_paused(owncast):
            made = await run_cli(short_state, "--last", "4")
            assert made.returncode == 0, made.stderr
            url = made.stdout.strip().splitlines()[-1]
            assert url.startswith(seaweed.public_url) and url.endswith("/master.m3u8"), made.stdout
            clip = service.clips.clips()[0]
            # The public port knows no /clips: making one takes the operator's socket.
            async with aiohttp.ClientSession() as http:
                for method in ("GET", "POST"):
                    async with http.request(method, f"{service.url}/clips", json={"last": 4}) as r:
                        assert r.status in (404, 405), (method, r.status)
            assert len(service.clips.clips()) == 1
            # A restart in the middle: the window and the clip are both still there.
            await running.aclose()  # the service stops
            service = await running.enter_async_context(running_service(settings))
            playlist = service.publisher.playlist(0)
            assert playlist is not None
            assert any(u.endswith(clip.keys[0].rsplit("/", 1)[1]) for u in playlist.uris())
        listed = await run_cli(short_state, "--list")
        assert listed.returncode == 0 and clip.id in listed.stdout and url in listed.stdout
        # ffmpeg reads the whole clip from the bucket's public URL: a VOD with every segment.
        done = await asyncio.to_thread(subprocess.run, [
            ffmpeg_exe(), "-nostdin", "-v", "error", "-i", url, "-map", "0", "-c", "copy", "-f", "mpegts",
            str(tmp_path / "clip.ts")], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and not done.stderr, done.stderr
        sizes = await sizes_of(seaweed, clip.keys)
        # Every variant's segments, remuxed (a few percent of container overhead either way).
        assert (tmp_path / "clip.ts").stat().st_size > 0.8 * sum(sizes.values()), sizes
        # The window slides on: older segments that are not the clip's are deleted, the clip's stay.
        cleaner = service.cleaner
        assert cleaner is not None
        await wait_until(lambda: cleaner.kept >= 1 and cleaner.deleted >= 4, timeout=60,
                         what="old segments deleted while the clip's are kept")
        present = await keys_in(seaweed)
        assert set(clip.keys) <= present
        deleted = await run_cli(short_state, "--delete", clip.id)
        assert deleted.returncode == 0, deleted.stderr
        await wait_until(lambda: cleaner.kept == 0, timeout=30, what="the clip's segments let go")
        # Out of the window by now, they go at the cleaner's next run.
        async def out_of_the_bucket() -> bool:
            return not set(clip.keys) & await keys_in(seaweed)

        await wait_until(out_of_the_bucket, "the deleted clip's segments gone from the bucket", 30, every=0.1)
    present = await keys_in(seaweed)
    assert not any(k.startswith(f"live/clips/{clip.id}/") for k in present)
    gone = await run_cli(short_state, "--list")
    assert "no service is running" in gone.stderr and gone.returncode == 1


def test_the_clip_command_finds_state_dir_in_the_env_file_as_the_service_does(tmp_path: Path) -> None:
    """No --state-dir: STATE_DIR from --env-file, as `run` reads it; no service there: one line naming it."""
    state = tmp_path / "operator-state"
    env_file = tmp_path / "service.env"
    env_file.write_text(f"STATE_DIR={state}\n")
    environ = {k: v for k, v in os.environ.items() if k != "STATE_DIR"}
    done = subprocess.run([sys.executable, "-m", "broadcaster", "--env-file", str(env_file), "clip", "--list"],
                          capture_output=True, text=True, timeout=60, env=environ, cwd=tmp_path)
    assert done.returncode == 1 and f"no service is running with STATE_DIR={state} " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not state.exists()  # looked for, not created
    missing = subprocess.run([sys.executable, "-m", "broadcaster", "--env-file", str(tmp_path / "typo.env"), "clip",
                              "--list"], capture_output=True, text=True, timeout=60, env=environ, cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.strip().endswith("typo.env does not exist"), missing.stderr
