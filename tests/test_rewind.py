"""The rewind window (REWIND_SECONDS): long live playlists that players still start at the edge, cheap
to render and to save after every segment, and delta updates that keep reloads small while it grows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish import playlist_memory
from broadcaster.settings import MAX_REWIND_SECONDS, SettingsError, load_settings
from broadcaster.state.disk import dumps
from tests.support.hls_checker import MediaPlaylistChecker
from tests.support.settings_env import env

T0 = 1_795_000_000.0


def seg(i: int, duration: float = 1.0, *, init: str | None = None, disc: bool = False) -> ListedSegment:
    return ListedSegment(f"https://cdn.example/live/0/s{i}.ts", duration, T0 + i, disc, init, f"live/0/s{i}.ts")


def reference(gen: ManifestGenerator, now: float) -> bytes:
    """The same version rendered from scratch (restored from a saved state: every entry's text afresh)."""
    saved = json.loads(dumps(playlist_memory.snapshot(gen, now)))
    again = playlist_memory.restore(saved, now, gen.options)
    assert again.last_discontinuity == gen.last_discontinuity  # counted as entries come and go
    return again.render().body


def test_a_long_window_renders_and_saves_the_same_as_from_scratch_through_every_change() -> None:
    rng = random.Random(7)
    gen = ManifestGenerator(2, WindowOptions(40, can_block_reload=True, start_at_edge=True))
    checker = MediaPlaylistChecker(allow_resume_after_endlist=True)
    now, n = 0.0, 0
    for step in range(400):
        now += 1
        roll = rng.random()
        if roll < 0.03:
            gen.mark_gap()
        elif roll < 0.05:
            gen.end()
        elif roll < 0.06:  # a new playlist at the same address: the checker judges it as a new one
            gen.restart(rng.choice([2, 3]), now)
            checker = MediaPlaylistChecker(allow_resume_after_endlist=True)
        elif roll < 0.07:
            gen.continue_above(gen.next_sequence + 50, gen.last_discontinuity + 2, now)
            checker = MediaPlaylistChecker(allow_resume_after_endlist=True)
        else:
            init = f"https://cdn.example/live/0/init{n // 60}.mp4"  # fMP4: every segment has one
            gen.append(seg(n, rng.choice([0.8, 1.0, 1.5, 2.0]), init=init, disc=rng.random() < 0.03), now)
            n += 1
        body = gen.render().body
        if gen.segment_count and gen.showable:  # what the publisher shows
            checker.assert_ok(body.decode())
        assert body == reference(gen, now), f"step {step}"


def test_players_are_told_to_start_at_the_live_edge_only_with_a_rewind_window() -> None:
    for start_at_edge in (True, False):
        gen = ManifestGenerator(3, WindowOptions(300, can_block_reload=True, start_at_edge=start_at_edge))
        for i in range(120):
            gen.append(seg(i, 3.0), float(i * 3))
        body = gen.render().body.decode()
        assert ("#EXT-X-START:TIME-OFFSET=-9.0" in body) is start_at_edge
        # The same distance as HOLD-BACK: a player starts where it would with a 30 s window.
        assert "HOLD-BACK=9.0" in body
        assert body.count("#EXTINF") == 100


def test_blocking_requests_get_delta_updates_while_a_rewind_window_grows() -> None:
    """Only what video.js would take for unchanged (as many segments as it holds) goes in full."""
    gen = ManifestGenerator(1, WindowOptions(600, can_block_reload=True, start_at_edge=True))
    full_answers = deltas = 0
    for i in range(300):
        gen.append(seg(i), float(i))
        rendered = gen.render()
        held = i  # the player holds segments 0..i-1 and asks for i
        answered = rendered.answer(True, held)
        if answered is rendered:
            full_answers += 1
            continue
        deltas += 1
        delta = answered.body.decode()
        assert delta.count("#EXTINF") != held and "#EXT-X-SKIP" in delta
        assert len(answered.body) < 1500
    assert deltas == 300 - 7 and full_answers == 7
    # Without _HLS_msn nobody says what they hold: only the first versions under a media sequence
    # could be taken for unchanged, so none of the growing window's deltas goes out blind.
    assert gen.render().answer(True) is gen.render()
    assert gen.render().answer(False, 299) is gen.render()


def test_rewind_seconds_is_bounded_with_a_one_line_error(tmp_path: Path) -> None:
    assert load_settings(environ=env(tmp_path)).rewind_seconds == 300
    settings = load_settings(environ=env(tmp_path, REWIND_SECONDS="3600", WINDOW_SECONDS="30"))
    assert settings.listed_seconds == 3600 and settings.segment_url_life == 3 * 3600 + 60
    assert load_settings(environ=env(tmp_path, REWIND_SECONDS="0")).listed_seconds == 30
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env(tmp_path, REWIND_SECONDS=str(MAX_REWIND_SECONDS + 1)))
    assert str(err.value) == f"REWIND_SECONDS='{MAX_REWIND_SECONDS + 1}': expected a number from 0 to 14400"
    with pytest.raises(SettingsError, match="PRESIGN_EXPIRY=3600 is shorter"):
        load_settings(environ=env(tmp_path, REWIND_SECONDS="3600", SEGMENT_URLS="presigned"))


def test_a_four_hour_window_is_saved_as_entries_encoded_once() -> None:
    gen = ManifestGenerator(1, WindowOptions(14_400, can_block_reload=True, start_at_edge=True))
    for i in range(14_410):
        gen.append(seg(i), float(i))
    saved = json.loads(dumps({"generator": playlist_memory.snapshot(gen, 14_410.0)}))["generator"]
    assert len(saved["entries"]) == gen.segment_count == 14_400
    first = saved["entries"][0]
    assert first[:3] == [gen.media_sequence, f"https://cdn.example/live/0/s{gen.media_sequence}.ts", 1.0]
