"""ManifestGenerator against every rule in docs/hls-rules.md, checked by the shared consecutive-version
checker and parsed back with the independent m3u8 parser."""

from __future__ import annotations

import m3u8
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.playlist import hls
from broadcaster.playlist.manifest import ManifestGenerator, SegmentRejected
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.master import render_master
from broadcaster.playlist.segments import ListedSegment
from broadcaster.publish import playlist_memory
from broadcaster.source.owncast import SourceVariant
from tests.support.hls_checker import MediaPlaylistChecker

T0 = 1_800_000_000.0


def seg(i: int, duration: float = 1.0, **kw: object) -> ListedSegment:
    return ListedSegment(uri=f"https://r2.example/live/0/s-{i}.ts", duration=duration,
                         program_date_time=kw.pop("pdt", T0 + i), **kw)  # type: ignore[arg-type]


def listing(target: int, window: float, count: int, duration: float = 1.0) -> ManifestGenerator:
    """A generator listing a0.ts to a<count - 1>.ts, each `duration` long, listed one after another."""
    gen = ManifestGenerator(target, WindowOptions(window))
    for n in range(count):
        gen.append(ListedSegment(f"a{n}.ts", duration, 1000.0 + duration * n), float(n))
    return gen


class Driven:
    """A generator whose every new rendering is fed to the checker."""

    def __init__(self, target: int = 1, window: float = 3.0) -> None:
        self.gen = ManifestGenerator(target, WindowOptions(window))
        self.checker = MediaPlaylistChecker(allow_resume_after_endlist=True)
        self.now = T0

    def text(self) -> str:
        return self.gen.render().body.decode()

    def check(self) -> str:
        text = self.text()
        self.checker.assert_ok(text)
        return text

    def append(self, s: ListedSegment, advance: float = 1.0) -> int:
        self.now += advance
        n = self.gen.append(s, self.now)
        self.check()
        return n


def test_first_version_has_the_minimal_header() -> None:
    d = Driven(target=2, window=6)
    d.append(seg(0, 2.0))
    text = d.text()
    assert text.splitlines()[:6] == [
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0", "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    assert "PLAYLIST-TYPE" not in text and "ENDLIST" not in text
    parsed = m3u8.loads(text)
    assert parsed.target_duration == 2 and parsed.segments[0].duration == 2.0
    assert parsed.segments[0].program_date_time.timestamp() == T0


def test_window_slides_one_sequence_number_per_removed_segment() -> None:
    d = Driven(target=1, window=3)
    for i in range(10):
        assert d.append(seg(i)) == i
    parsed = m3u8.loads(d.text())
    assert parsed.media_sequence == 7
    assert [s.uri.rsplit("/", 1)[1] for s in parsed.segments] == ["s-7.ts", "s-8.ts", "s-9.ts"]
    assert d.checker.versions == 10


def test_window_is_never_shorter_than_three_target_durations() -> None:
    d = Driven(target=2, window=1)  # asks for less than the spec allows
    for i in range(10):
        d.append(seg(i, 2.0), advance=2.0)
    assert d.gen.window.duration >= 6.0
    assert d.gen.segment_count == 3


def test_discontinuity_is_tagged_and_counted_when_it_slides_out() -> None:
    d = Driven(target=1, window=3)
    for i in range(3):
        d.append(seg(i))
    d.append(seg(3, discontinuity=True))
    assert "#EXT-X-DISCONTINUITY\n" in d.text()
    for i in range(4, 7):
        d.append(seg(i))
    assert d.gen.media_sequence == 4 and d.gen.discontinuity_sequence == 1
    assert "#EXT-X-DISCONTINUITY\n" not in d.text()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in d.text()


def test_gap_marks_the_next_segment_but_not_the_first_ever() -> None:
    d = Driven()
    d.gen.mark_gap()
    d.append(seg(0))
    assert "#EXT-X-DISCONTINUITY\n" not in d.text()
    d.gen.mark_gap()
    d.append(seg(2, pdt=T0 + 2))
    assert d.text().count("#EXT-X-DISCONTINUITY\n") == 1


def test_a_gap_entry_keeps_its_number_date_and_duration_with_ext_x_gap_and_no_discontinuity() -> None:
    """A gap entry: EXT-X-GAP (4.4.4.7) before its EXTINF, no discontinuity, the same version, restored."""
    d = Driven(window=6.0)
    d.append(seg(0))
    number = d.append(seg(1, gap=True))
    d.append(seg(2))
    text = d.check()
    block = text.split("s-0.ts\n")[1].split("s-1.ts")[0]
    assert block == (f"#EXT-X-PROGRAM-DATE-TIME:{hls.format_program_date_time(T0 + 1)}\n"
                     "#EXT-X-GAP\n#EXTINF:1.000,\nhttps://r2.example/live/0/")
    assert number == 1 and "#EXT-X-DISCONTINUITY\n" not in text and "#EXT-X-VERSION:3\n" in text
    assert d.gen.last_discontinuity == 0
    assert [s.gap_tag for s in m3u8.loads(text).segments] == [None, True, None]  # as m3u8 reads it
    again = playlist_memory.restore(playlist_memory.snapshot(d.gen, d.now), d.now, WindowOptions(6.0))
    assert again.render().body == d.gen.render().body


@pytest.mark.parametrize("duration", [1.5, 1.4996, 2.0, 0.0, -1.0])
def test_segment_that_does_not_fit_the_target_is_rejected(duration: float) -> None:
    gen = ManifestGenerator(1, WindowOptions(3))
    with pytest.raises(SegmentRejected):
        gen.append(seg(0, duration), T0)
    assert gen.segment_count == 0 and gen.next_sequence == 0


def test_a_duration_rounds_as_its_extinf_is_written() -> None:
    """4.4.3.1 compares the EXTINF written (milliseconds): 1.4996 is written 1.500 and needs a target of 2."""
    assert hls.rounded_duration(1.4996) == 2 and hls.rounded_duration(1.4994) == 1
    assert not hls.fits_target(1.4996, 1) and hls.fits_target(1.4994, 1) and not hls.fits_target(0.0004, 1)


def test_segment_just_under_half_over_fits() -> None:
    d = Driven()
    d.append(seg(0, 1.499))
    assert "#EXTINF:1.499," in d.text()


def test_endlist_then_resume_continues_with_a_discontinuity() -> None:
    d = Driven()
    for i in range(4):
        d.append(seg(i))
    d.gen.end()
    ended = d.check()
    assert ended.endswith("#EXT-X-ENDLIST\n")
    d.gen.end()  # idempotent
    assert d.gen.render().body.decode() == ended
    d.append(seg(10, pdt=T0 + 100))
    text = d.text()
    assert "ENDLIST" not in text and "#EXT-X-DISCONTINUITY\n" in text
    assert not d.gen.ended


def test_program_date_time_is_synthesized_continuously_when_missing() -> None:
    d = Driven()
    d.append(ListedSegment("https://r2/a.ts", 1.0), advance=0)
    d.append(ListedSegment("https://r2/b.ts", 1.0))
    assert [s.program_date_time.timestamp() for s in m3u8.loads(d.text()).segments] == [T0 - 1.0, T0]


def test_fmp4_map_precedes_first_segment_and_survives_sliding() -> None:
    d = Driven()
    init = "https://r2/live/0/abc-init.mp4"
    for i in range(6):
        d.append(ListedSegment(f"https://r2/live/0/s{i}.m4s", 1.0, T0 + i, init_uri=init))
    text = d.text()
    assert "#EXT-X-VERSION:6" in text
    assert text.count("#EXT-X-MAP") == 1
    lines = text.splitlines()
    assert lines.index(f'#EXT-X-MAP:URI="{init}"') < lines.index("#EXTINF:1.000,")
    assert all(s.init_section.uri == init for s in m3u8.loads(text).segments)


def test_render_is_cached_until_the_playlist_changes() -> None:
    gen = ManifestGenerator(1, WindowOptions(3))
    gen.append(seg(0), T0)
    first = gen.render()
    assert gen.render() is first
    gen.append(seg(1), T0 + 1)
    second = gen.render()
    assert second is not first and second.etag != first.etag
    assert second.gzip_body is second.gzip_body


def test_backlog_burst_grows_the_window_until_segments_were_listed_long_enough() -> None:
    d = Driven(target=1, window=5)
    for i in range(20):  # R2 came back: 20 segments listed in the same instant
        d.append(seg(i), advance=0)
    assert d.gen.segment_count == 20 and d.gen.media_sequence == 0
    d.append(seg(20), advance=5.0)  # a window later the backlog may slide out
    assert d.gen.window.duration < 7


def test_removed_segment_is_kept_for_the_longest_playlist_that_listed_it_not_the_longest_ever() -> None:
    # 6.2.2: a removed segment stays for its duration plus the longest playlist that contained it.
    d = Driven(target=1, window=3)
    for i in range(10):
        d.append(seg(i), advance=0)
    keep: dict[str, float] = {}
    for i in range(10, 30):
        d.append(seg(i))
        keep.update((r.segment.uri, r.keep) for r in d.gen.drain_removed())
    assert keep[seg(0).uri] >= 1 + 10  # it was in the 10-segment burst
    assert keep[seg(25).uri] <= 1 + 5  # listed long after: only ever in a 3-4 s window (+ the next)
    # A restart knows no better than the longest playlist still-listed segments were in.
    restored = playlist_memory.restore(playlist_memory.snapshot(d.gen, d.now), d.now, WindowOptions(3.0))
    restored.append(seg(30), d.now + 1)
    restored.append(seg(31), d.now + 2)
    assert all(r.keep <= 1 + 5 for r in restored.drain_removed())


def test_master_keeps_attributes_and_uses_relative_uris() -> None:
    text = render_master([
        SourceVariant(0, 1_200_000, 1_000_000, (1280, 720), "avc1.64001f,mp4a.40.2", 30.0),
        SourceVariant(1, 400_000, None, (640, 360), None, None),
    ]).body.decode()
    parsed = m3u8.loads(text)
    assert [p.uri for p in parsed.playlists] == ["0/playlist.m3u8", "1/playlist.m3u8"]
    info = parsed.playlists[0].stream_info
    assert (info.bandwidth, info.resolution, info.codecs) == (1_200_000, (1280, 720), "avc1.64001f,mp4a.40.2")


_ops = st.lists(
    st.one_of(st.tuples(st.just("seg"), st.floats(0.2, 1.8), st.booleans(), st.floats(0, 3)),
              st.tuples(st.just("gap"), st.just(0.0), st.just(False), st.just(0.0)),
              st.tuples(st.just("end"), st.just(0.0), st.just(False), st.just(0.0))),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(ops=_ops, target=st.integers(1, 4), window=st.floats(0.5, 12))
def test_any_sequence_of_changes_keeps_every_rule(
        ops: list[tuple[str, float, bool, float]], target: int, window: float) -> None:
    d = Driven(target=target, window=window)
    pdt = T0
    for i, (op, duration, disc, advance) in enumerate(ops):
        if op == "seg":
            before = d.text()
            try:
                d.append(seg(i, duration * target, pdt=pdt, discontinuity=disc), advance=advance)
            except SegmentRejected:
                assert round(duration * target, 3) >= target + 0.5  # only what cannot fit is refused
                assert d.text() == before  # and refusing changes nothing
            pdt += duration * target
        elif op == "gap":
            d.gen.mark_gap()
        else:
            d.gen.end()
            d.check()


def test_restart_starts_a_new_playlist_above_everything_before() -> None:
    """A new target: no segment shared with the last version, numbers above, window rule kept."""
    gen = ManifestGenerator(1, WindowOptions(6.0))
    checker = MediaPlaylistChecker(allow_restart=True)
    strict = MediaPlaylistChecker()
    now = 0.0
    for n in range(10):
        now += 1.0
        gen.append(ListedSegment(f"a{n}.ts", 1.0, 1000.0 + n, discontinuity=n == 5), now)
        text = gen.render().body.decode()
        checker.assert_ok(text)
        strict.assert_ok(text)
    last = gen.next_sequence - 1
    gen.restart(3, now)
    assert [r.segment.uri for r in gen.drain_removed()][-1] == "a9.ts"  # all kept downloadable
    for n in range(6):
        now += 3.0
        gen.append(ListedSegment(f"b{n}.ts", 3.0, 2000.0 + 3 * n), now)
        text = gen.render().body.decode()
        checker.assert_ok(text)
        if n == 0:
            assert "#EXT-X-TARGETDURATION:3" in text and f"#EXT-X-MEDIA-SEQUENCE:{last + 1}" in text
            assert any(v.rule == "target-duration-changed" for v in strict.check(text))
    assert checker.restarts == 1 and gen.window_seconds >= 9.0


def test_the_checker_refuses_a_restart_that_goes_back() -> None:
    checker = MediaPlaylistChecker(allow_restart=True)
    gen = listing(1, 3.0, 4)
    checker.assert_ok(gen.render().body.decode())
    # Numbers above, but no new discontinuity number: only where the dates go on from the last segment.
    for date in (1002.0, 2000.0):  # back into the old window; far past anything missed
        same_number = ManifestGenerator(2, WindowOptions(6.0))
        same_number.append(ListedSegment("b0.ts", 2.0, date), 10.0, sequence=4)
        fresh = MediaPlaylistChecker(allow_restart=True)
        fresh.assert_ok(gen.render().body.decode())
        assert [v.rule for v in fresh.check(same_number.render().body.decode())] == ["restart-not-above"]
    back = ManifestGenerator(2, WindowOptions(6.0))
    back.append(ListedSegment("c0.ts", 2.0, 3000.0), 10.0, sequence=1)
    assert "msn-uri-changed" in [v.rule for v in checker.check(back.render().body.decode())]


def test_restart_within_a_stream_keeps_the_timeline() -> None:
    """new_timeline=False keeps the discontinuity number, unless a gap, an end or a flag."""
    checker = MediaPlaylistChecker(allow_restart=True)
    gen = ManifestGenerator(1, WindowOptions(3.0))
    for n in range(5):
        gen.append(ListedSegment(f"a{n}.ts", 1.0, 1000.0 + n, discontinuity=n == 2), float(n))
        checker.assert_ok(gen.render().body.decode())
    number = gen.last_discontinuity
    assert number == 1 and gen.next_discontinuity(False) == 1 and gen.next_discontinuity(True) == 2
    gen.restart(3, 5.0, new_timeline=False)
    assert gen.segment_count == 0 and gen.next_discontinuity(False) == 1 and gen.next_discontinuity(True) == 2
    gen.append(ListedSegment("b0.ts", 2.5, 1005.0), 7.5)
    text = gen.render().body.decode()
    checker.assert_ok(text)
    assert checker.restarts == 1 and gen.last_discontinuity == 1
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text and "#EXT-X-DISCONTINUITY\n" not in text
    assert "#EXT-X-MEDIA-SEQUENCE:5\n" in text and "#EXT-X-TARGETDURATION:3\n" in text

    # What says "new timeline" still does, also on the first segment of the new playlist.
    for before, flag in (("gap", False), ("end", False), (None, True)):
        g = listing(1, 3.0, 4)
        if before == "gap":
            g.mark_gap()
        elif before == "end":
            g.end()
        g.restart(3, 4.0, new_timeline=False)
        g = playlist_memory.restore(playlist_memory.snapshot(g, 4.0), 4.0, WindowOptions(9.0))  # and across a restart of the service
        g.append(ListedSegment("b0.ts", 2.5, 1010.0, discontinuity=flag), 6.5)
        assert g.last_discontinuity == 1, before
        assert g.render().body.decode().count("#EXT-X-DISCONTINUITY\n") == 1, before


def test_a_playlist_emptied_by_a_restart_joins_at_the_number_given() -> None:
    """join counts the next segment's own tag: the others' number, not one above."""
    gen = listing(2, 6.0, 3, 2.0)
    gen.restart(5, 6.0, new_timeline=False, served_through=2)
    assert gen.segment_count == 0 and gen.next_discontinuity(True) == 1
    gen.join(1, True)  # the others give the new stream's first moment number 1
    gen.append(ListedSegment("b0.ts", 2.0, 1020.0, discontinuity=True), 20.0, sequence=5)
    assert gen.last_discontinuity == 1 and gen.render().body.decode().count("#EXT-X-DISCONTINUITY\n") == 1


def test_an_end_before_a_restart_within_a_stream_stays_and_an_empty_restarted_playlist_ends() -> None:
    """The restarted playlist ends empty, then joins at the others' number; never-listed: no end."""
    for end_first in (True, False):
        checker = MediaPlaylistChecker(allow_restart=True, allow_resume_after_endlist=True)
        gen = listing(2, 6.0, 3, 2.0)
        if end_first:
            gen.end()
        checker.assert_ok(gen.render().body.decode())
        gen.restart(5, 6.0, new_timeline=False, served_through=2)
        assert gen.segment_count == 0 and gen.ended == end_first
        gen.end()
        text = gen.render().body.decode()
        assert gen.ended and "#EXT-X-TARGETDURATION:5\n" in text and text.endswith("#EXT-X-ENDLIST\n")
        assert "#EXT-X-MEDIA-SEQUENCE:3\n" in text and "#EXT-X-DISCONTINUITY-SEQUENCE:0\n" in text
        checker.assert_ok(text)
        assert checker.restarts == 1
        assert gen.next_discontinuity(False) == 1  # after an end
        gen.join(1, False)  # the others give the new stream's first moment number 1
        gen.append(ListedSegment("b0.ts", 2.0, 1020.0), 20.0, sequence=5)
        text = gen.render().body.decode()
        checker.assert_ok(text)
        assert gen.last_discontinuity == 1 and text.count("#EXT-X-DISCONTINUITY\n") == 1
    never = ManifestGenerator(2, WindowOptions(6.0))
    never.end()
    assert not never.ended


@pytest.mark.parametrize("new_timeline", [True, False])
def test_a_restart_starts_the_new_playlist_with_what_was_never_served(new_timeline: bool) -> None:
    """Never-served segments start the new playlist under their numbers; a gap stays after them."""
    checker = MediaPlaylistChecker(allow_restart=True)
    gen = listing(1, 3.0, 4)
    checker.assert_ok(gen.render().body.decode())  # the last version served: up to a3, number 3
    for n in range(4, 6):
        gen.append(ListedSegment(f"a{n}.ts", 1.0, 1000.0 + n), float(n))  # listed, never shown
    gen.mark_gap()
    assert gen.restart(3, 6.0, new_timeline=new_timeline, served_through=3) == []
    assert [r.segment.uri for r in gen.drain_removed()] == [f"a{n}.ts" for n in range(4)]
    assert gen.uris() == ["a4.ts", "a5.ts"] and gen.media_sequence == 4 and gen.next_sequence == 6
    gen.append(ListedSegment("b0.ts", 2.5, 1010.0), 8.5)
    text = gen.render().body.decode()
    checker.assert_ok(text)
    assert checker.restarts == 1
    assert f"#EXT-X-PROGRAM-DATE-TIME:{hls.format_program_date_time(1004.0)}\n#EXTINF:1.000,\na4.ts" in text
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and text.index("#EXT-X-DISCONTINUITY\n") < text.index("b0.ts")
    assert text.index("a5.ts") < text.index("#EXT-X-DISCONTINUITY\n")  # the gap after a5, not before a4
    # Without served_through, everything leaves.
    again = listing(1, 3.0, 1)
    assert again.restart(3, 1.0) == [] and again.uris() == []


def test_segments_carried_into_a_new_timeline_keep_theirs_and_the_next_segment_starts_it_tagged() -> None:
    """Carried segments keep their timeline; the next starts a new one, numbered as without."""
    checker = MediaPlaylistChecker(allow_restart=True)
    gen = listing(1, 3.0, 3)
    checker.assert_ok(gen.render().body.decode())
    gen.append(ListedSegment("a3.ts", 1.0, 1003.0), 3.0)  # listed, never shown
    plain = listing(1, 3.0, 1)  # a variant with nothing to carry, restarted alike
    assert gen.last_discontinuity == plain.last_discontinuity == 0
    assert gen.restart(6, 4.0, new_timeline=True, served_through=2) == []
    plain.restart(6, 4.0, new_timeline=True)
    gen.append(ListedSegment("new0.ts", 2.0, 5000.0), 5.0)
    plain.append(ListedSegment("newp.ts", 2.0, 5000.0), 5.0)
    text = gen.render().body.decode()
    checker.assert_ok(text)
    assert text.index("a3.ts") < text.index("#EXT-X-DISCONTINUITY\n") < text.index("new0.ts"), text
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0\n" in text  # a3 is still on timeline 0
    assert gen.last_discontinuity == plain.last_discontinuity == 1  # one moment, one number (6.2.4)


def test_two_restarts_in_a_row_count_one_new_timeline_whether_emptied_or_carrying() -> None:
    """Two restarts in a row count one new timeline, emptied or carrying (6.2.4), not one per restart."""
    checker = MediaPlaylistChecker(allow_restart=True)
    carrying, emptied = listing(1, 3.0, 3), listing(1, 3.0, 3)
    checker.assert_ok(emptied.render().body.decode())
    carrying.append(ListedSegment("a3.ts", 1.0, 1003.0), 3.0)  # listed, never shown
    for target, now in ((2, 4.0), (4, 5.0)):
        assert carrying.restart(target, now, new_timeline=True, served_through=2) == []
        emptied.restart(target, now, new_timeline=True)
    assert carrying.uris() == ["a3.ts"] and emptied.uris() == []
    carrying.append(ListedSegment("b0.ts", 2.0, 5000.0, discontinuity=True), 6.0)
    emptied.append(ListedSegment("b0.ts", 2.0, 5000.0, discontinuity=True), 6.0)
    checker.assert_ok(emptied.render().body.decode())
    assert carrying.last_discontinuity == emptied.last_discontinuity == 1
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in emptied.render().body.decode()


def test_a_carried_first_segment_of_a_new_stream_keeps_its_discontinuity_number() -> None:
    """A carried segment that began a stream keeps its own number (6.2.4), its tag unrendered."""
    checker = MediaPlaylistChecker(allow_restart=True)
    gen = listing(2, 6.0, 3, 2.0)
    gen.end()
    checker.assert_ok(gen.render().body.decode())  # the last version served: up to a2, number 2
    gen.append(ListedSegment("b0.ts", 2.0, 1020.0, discontinuity=True), 4.0)  # listed, never shown
    assert gen.last_discontinuity == 1
    assert gen.restart(5, 5.0, new_timeline=True, served_through=2) == []
    assert gen.uris() == ["b0.ts"] and gen.last_discontinuity == 1
    gen.append(ListedSegment("b1.ts", 2.0, 1022.0), 6.0)
    text = gen.render().body.decode()
    checker.assert_ok(text)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text, text  # b0 under 1, as before the restart
    assert text.index("b0.ts") < text.index("#EXT-X-DISCONTINUITY\n") < text.index("b1.ts"), text
    assert gen.last_discontinuity == 2  # b1 starts the new timeline


def test_a_restart_to_a_lower_target_leaves_what_does_not_fit_and_what_follows_it_and_marks_the_gap() -> None:
    """a3 fits but follows a2's hole (6.2.4): it leaves too, and the next marks the gap."""
    gen = ManifestGenerator(4, WindowOptions(12.0))
    for n, duration in enumerate((3.5, 1.0, 3.8, 1.0)):
        gen.append(ListedSegment(f"a{n}.ts", duration, 1000.0 + 4 * n), float(n))
    left = gen.restart(2, 5.0, served_through=0, new_timeline=False)
    assert [s.uri for s in left] == ["a2.ts", "a3.ts"]
    assert gen.uris() == ["a1.ts"] and gen.media_sequence == 1 and gen.last_discontinuity == 0
    gen.append(ListedSegment("a4.ts", 1.0, 1016.0), 6.0)
    text = gen.render().body.decode()
    assert "#EXT-X-TARGETDURATION:2\n" in text
    assert text.index("a1.ts") < text.index("#EXT-X-DISCONTINUITY\n") < text.index("a4.ts")
    assert MediaPlaylistChecker().check(text) == []


def test_a_new_timeline_carries_what_was_never_shown_on_to_where_the_other_variants_go_on() -> None:
    """carry_to moves what one variant carries up to the others' next number (6.2.4), never down."""
    gen = listing(2, 12.0, 4, 2.0)
    assert gen.restart(2, 5.0, served_through=1, carry_to=7) == []
    assert gen.uris() == ["a2.ts", "a3.ts"] and gen.media_sequence == 5 and gen.next_sequence == 7
    gen.append(ListedSegment("b0.ts", 2.0, 2000.0, discontinuity=True), 6.0)
    text = gen.render().body.decode()
    assert "#EXT-X-MEDIA-SEQUENCE:5\n" in text and text.index("a3.ts") < text.index("#EXT-X-DISCONTINUITY\n")
    assert MediaPlaylistChecker().check(text) == []
    # Below what it carries already: its own numbers.
    again = listing(2, 12.0, 4, 2.0)
    again.restart(2, 5.0, served_through=1, carry_to=3)
    assert again.media_sequence == 2 and again.next_sequence == 4


@pytest.mark.parametrize("limit", [1200, 3000, 8000])
@pytest.mark.parametrize("fmp4", [False, True])
def test_the_newest_segments_of_a_long_window_are_a_playlist_numbered_as_the_whole(limit: int, fmp4: bool) -> None:
    """Without gzip, at most about MAX_IDENTITY_BYTES: the newest whole segments, numbered as in the whole."""
    from broadcaster.playlist.rendered import newest_segments

    gen = ManifestGenerator(2, WindowOptions(600.0, can_block_reload=True, start_at_edge=True))
    for n in range(120):
        init = f"https://r2.example/live/0/init-{n // 40}.mp4" if fmp4 else None
        gen.append(ListedSegment(f"https://r2.example/live/0/s-{n}.ts", 1.5, T0 + 2 * n,
                                 discontinuity=n % 17 == 5, init_uri=init), float(n))
    full = gen.render()
    assert full.delta is not None and b"CAN-SKIP-UNTIL" in full.body
    body = newest_segments(full.body, limit)
    assert len(body) <= limit and body.endswith(full.body[-200:])
    whole, part = m3u8.loads(full.body.decode()), m3u8.loads(body.decode())
    kept = len(part.segments)
    assert 3 <= kept < len(whole.segments)
    assert part.media_sequence == whole.media_sequence + len(whole.segments) - kept
    assert b"CAN-SKIP-UNTIL" not in body and b"CAN-BLOCK-RELOAD=YES" in body and b"#EXT-X-START:" in body
    for mine, theirs in zip(part.segments, whole.segments[-kept:], strict=True):
        assert (mine.uri, mine.duration, mine.program_date_time) == (theirs.uri, theirs.duration,
                                                                     theirs.program_date_time)
        assert (mine.init_section.uri if mine.init_section else None) == (
            theirs.init_section.uri if theirs.init_section else None)
    # Discontinuity numbers: the whole's, at every segment kept (hls.js's cc; 6.2.4 across versions).
    def numbers(text: str) -> list[int]:
        parsed = m3u8.loads(text)
        segments, first = parsed.segments, parsed.discontinuity_sequence or 0
        return [first + sum(bool(s.discontinuity) for s in segments[:i + 1]) for i in range(len(segments))]
    assert numbers(body.decode()) == numbers(full.body.decode())[-kept:]
    assert MediaPlaylistChecker().check(body.decode()) == []
    assert full.identity is full  # under hls.MAX_IDENTITY_BYTES: served whole
    assert newest_segments(full.body, len(full.body)) is full.body  # fits: the same bytes
