"""Reading Owncast's playlists: complete, half-written, hostile."""

from __future__ import annotations

import pytest

from broadcaster.source.owncast import (
    PlaylistError, is_safe_name, parse_master_playlist, parse_media_playlist, stream_id,
)

MEDIA = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:40:01.123+0000
#EXTINF:3.000000,
stream-Ab3dE-41.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:40:04.123+0000
#EXTINF:2.966667,
stream-Ab3dE-42.ts
#EXT-X-DISCONTINUITY
#EXTINF:8.000000,
offline.ts
#EXT-X-ENDLIST
"""

MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=1240800,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"
0/stream.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=440800,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"
1/stream.m3u8
"""


def test_media_playlist_gives_durations_dates_and_end() -> None:
    p = parse_media_playlist(MEDIA)
    assert (p.target_duration, p.media_sequence, p.ended, p.independent_segments) == (3, 41, True, True)
    assert [s.name for s in p.segments] == ["stream-Ab3dE-41.ts", "stream-Ab3dE-42.ts", "offline.ts"]
    assert p.segments[1].duration == pytest.approx(2.966667)
    assert p.segments[0].program_date_time is not None
    assert p.segments[1].program_date_time == pytest.approx(p.segments[0].program_date_time + 3.0)
    assert p.segments[2].discontinuity and p.segments[2].is_offline_clip
    assert not p.segments[0].is_offline_clip


def test_every_truncation_is_rejected_or_a_prefix_and_never_ends_the_stream() -> None:
    full = parse_media_playlist(MEDIA)
    for cut in range(len(MEDIA) - 1):
        try:
            p = parse_media_playlist(MEDIA[:cut])
        except PlaylistError:
            continue
        assert not p.ended, cut
        names = [s.name for s in p.segments]
        assert names == [s.name for s in full.segments][: len(names)], cut


@pytest.mark.parametrize("text", ["", "garbage\n", "\x00\x01\n", "#EXTM3U\n#EXTINF:x,\na.ts\n", "#EXTM3U\nx.ts\n"])
def test_garbage_is_a_playlist_error(text: str) -> None:
    with pytest.raises(PlaylistError):
        parse_media_playlist(text)


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "/etc/passwd", "a/b.ts", "a%2F..ts", "http://evil.example/x.ts", "x.ts?y", "..ts", ".hidden.ts", ""]
)
def test_unsafe_names_are_skipped_and_reported(name: str) -> None:
    assert not is_safe_name(name)
    if not name:
        return
    text = f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{name}\n#EXTINF:1.0,\nok-1.ts\n"
    p = parse_media_playlist(text)
    assert [s.name for s in p.segments] == ["ok-1.ts"]
    assert p.rejected[0][0] == name


def test_fmp4_init_section_is_read_from_map() -> None:
    p = parse_media_playlist(
        '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI="init_0.mp4"\n#EXTINF:1.0,\nstream-x-1.m4s\n'
    )
    assert p.segments[0].init_name == "init_0.mp4"


@pytest.mark.parametrize(("name", "run"), [("stream-Ab3dE-41.ts", "Ab3dE"), ("stream-offline-3.ts", "offline"),
                                           ("segment_1.ts", None), ("stream-ab-DEF_23-14.ts", "ab-DEF_23")])
def test_stream_id(name: str, run: str | None) -> None:
    assert stream_id(name) == run  # a run's id may hold dashes


def test_master_playlist_variants() -> None:
    variants = parse_master_playlist(MASTER)
    assert [v.index for v in variants] == [0, 1]
    assert variants[0].resolution == (1280, 720) and variants[0].codecs == "avc1.64001f,mp4a.40.2"


def test_master_without_usable_variants_is_an_error() -> None:
    with pytest.raises(PlaylistError):
        parse_master_playlist("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n../../x.m3u8\n")


def test_only_ascii_digits_name_a_variant_or_a_segment() -> None:
    # int() reads other scripts' digits ("٣" is 3): such a folder must not pass for variant 3.
    with pytest.raises(PlaylistError):
        parse_master_playlist("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n\u0663/stream.m3u8\n")
    assert stream_id("stream-Ab3dE-\u0664\u0661.ts") is None


def test_a_playlist_cut_right_after_its_header_is_incomplete() -> None:
    with pytest.raises(PlaylistError):
        parse_media_playlist("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n")
