"""Tests for tests.support.hls_checker: for every rule a passing sequence and a minimal sequence that breaks it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from tests.support.hls_checker import MediaPlaylistChecker, VariantSetChecker, Violation, check_master

if TYPE_CHECKING:  # a type only: a unit test loads no emulator (tests/test_suite_rules.py)
    from broadcaster.demo.emulator import OwncastEmulator

# ---------------------------------------------------------------------------------------------- builders

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seg:
    """One segment. ``dur=None`` writes no EXTINF; ``uri=""`` writes an EXTINF without a URI line."""

    uri: str
    dur: str | None = "6.000"
    disc: bool = False
    pdt: str | None = None
    tags: tuple[str, ...] = ()  # extra tag lines written before the segment


def segs(*uris: str, dur: str = "6.000") -> list[Seg]:
    return [Seg(u, dur) for u in uris]


def pdt(seconds: float) -> str:
    """An ISO 8601 PDT with milliseconds and a zone, ``seconds`` after T0."""
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def media(segments: list[Seg], *, ms: int | str | None = 0, dseq: int | str | None = None,
          target: int | str | None = 6, version: int | str | None = 3, header: tuple[str, ...] = (),
          footer: tuple[str, ...] = (), endlist: bool = False, trailer: tuple[str, ...] = ()) -> str:
    """Render a media playlist. ``None`` leaves a header tag out; ``trailer`` goes after EXT-X-ENDLIST."""
    out = ["#EXTM3U"]
    if version is not None:
        out.append(f"#EXT-X-VERSION:{version}")
    if target is not None:
        out.append(f"#EXT-X-TARGETDURATION:{target}")
    if ms is not None:
        out.append(f"#EXT-X-MEDIA-SEQUENCE:{ms}")
    if dseq is not None:
        out.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{dseq}")
    out.extend(header)
    for s in segments:
        out.extend(s.tags)
        if s.disc:
            out.append("#EXT-X-DISCONTINUITY")
        if s.pdt is not None:
            out.append(f"#EXT-X-PROGRAM-DATE-TIME:{s.pdt}")
        if s.dur is not None:
            out.append(f"#EXTINF:{s.dur},")
        if s.uri:
            out.append(s.uri)
    out.extend(footer)
    if endlist:
        out.append("#EXT-X-ENDLIST")
    out.extend(trailer)
    return "\n".join(out) + "\n"


def master(*lines: str) -> str:
    return "\n".join(("#EXTM3U", *lines)) + "\n"


GOOD_MASTER = master("#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS",
                     '#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"',
                     "720p/playlist.m3u8", "#EXT-X-STREAM-INF:BANDWIDTH=800000", "360p/playlist.m3u8")


def rules(violations: list[Violation]) -> set[str]:
    return {v.rule for v in violations}


def feed(texts: list[str], **allowed: bool) -> list[list[Violation]]:
    checker = MediaPlaylistChecker(name="", **allowed)
    return [checker.check(t) for t in texts]


A4 = segs("a.ts", "b.ts", "c.ts", "d.ts")
BASE = media(A4)
# b.ts listed with EXT-X-GAP (4.4.4.7): its URI holds no media; no protocol version needed.
GAPPED = media([A4[0], Seg("b.ts", tags=("#EXT-X-GAP",)), *A4[2:]])

# ---------------------------------------------------------------------------------------------- rule table


class Case(NamedTuple):
    """The bad sequence differs minimally from the good one; all its versions but the last must pass."""

    rule: str
    good: list[str]
    bad: list[str]
    allowed: dict[str, bool] = {}  # noqa: RUF012 (the checker's options; never changed)
    companions: frozenset[str] = frozenset()  # rules that necessarily come with it


NUMBERING = frozenset({"msn-uri-changed", "uri-msn-changed"})  # a shift always renumbers retained segments

PER_VERSION: list[Case] = [
    Case("extm3u-missing", [BASE], [BASE.removeprefix("#EXTM3U\n")]),
    Case("extm3u-missing", [BASE], ["\ufeff" + BASE]),  # no BOM (4.1)
    Case("tag-duplicated", [BASE], [media(A4, header=("#EXT-X-TARGETDURATION:6",))]),
    Case("version-missing", [BASE], [media(A4, version=None)]),
    Case("version-invalid", [BASE], [media(A4, version="3.0")]),
    Case("version-too-low", [BASE], [media(A4, version=2)]),
    Case("version-too-high", [BASE], [media(A4, version=4)]),
    Case("version-too-high", [media(segs("a.ts", dur="6"), version=1)],
         [media(segs("a.ts", dur="6"), version=2)]),
    Case("version-too-low", [media(A4, version=6, header=('#EXT-X-MAP:URI="init.mp4"',))],
         [media(A4, version=3, header=('#EXT-X-MAP:URI="init.mp4"',))]),
    Case("version-too-high", [media(A4, version=6, header=('#EXT-X-MAP:URI="init.mp4"',))],
         [media(A4, version=7, header=('#EXT-X-MAP:URI="init.mp4"',))]),
    Case("target-duration-missing", [BASE], [media(A4, target=None)]),
    Case("target-duration-invalid", [BASE], [media(A4, target="6.2")]),
    Case("target-duration-invalid", [BASE], [media(A4, target=0)]),
    Case("extinf-invalid", [BASE], [media([*A4, Seg("e.ts", "6.0s")])]),
    Case("extinf-invalid", [BASE], [media([*A4, Seg("e.ts", None, tags=("#EXTINF:6.000",))])]),
    Case("extinf-exceeds-target", [media([*A4, Seg("e.ts", "6.499")])], [media([*A4, Seg("e.ts", "6.500")])]),
    Case("segment-missing-extinf", [BASE], [media([*A4, Seg("e.ts", None)])]),
    Case("segment-uri-missing", [BASE], [media([*A4, Seg("")])]),
    Case("segment-uri-missing", [BASE], [media([Seg(""), *A4])]),
    Case("media-sequence-invalid", [BASE], [media(A4, ms="x")]),
    Case("media-sequence-after-segment", [media(A4, ms=None, header=("#EXT-X-MEDIA-SEQUENCE:0",))],
         [media(A4, ms=None, footer=("#EXT-X-MEDIA-SEQUENCE:0",))]),
    Case("discontinuity-sequence-invalid", [media(A4, dseq=0)], [media(A4, dseq="-1")]),
    Case("discontinuity-sequence-after-segment", [media(A4, header=("#EXT-X-DISCONTINUITY-SEQUENCE:0",))],
         [media(A4, footer=("#EXT-X-DISCONTINUITY-SEQUENCE:0",))]),
    Case("playlist-type-present", [BASE], [media(A4, header=("#EXT-X-PLAYLIST-TYPE:EVENT",))]),
    Case("playlist-type-invalid", [media(A4, header=("#EXT-X-PLAYLIST-TYPE:EVENT",))],
         [media(A4, header=("#EXT-X-PLAYLIST-TYPE:LIVE",))], {"allow_playlist_type": True}),
    Case("pdt-invalid", [media([Seg("a.ts", pdt=pdt(0))])], [media([Seg("a.ts", pdt="yesterday")])]),
    Case("pdt-invalid", [media([Seg("a.ts", pdt=pdt(0))])],
         [media([Seg("a.ts", pdt="2024-02-30T10:00:00.000Z")])]),
    Case("pdt-missing-timezone", [media([Seg("a.ts", pdt="2024-05-01T10:00:00.000+02:00")])],
         [media([Seg("a.ts", pdt="2024-05-01T10:00:00.000")])]),
    Case("pdt-missing-milliseconds", [media([Seg("a.ts", pdt="2024-05-01T10:00:00.000Z")])],
         [media([Seg("a.ts", pdt="2024-05-01T10:00:00Z")])]),
    Case("pdt-missing-after-discontinuity",
         [media([Seg("a.ts", pdt=pdt(0)), Seg("b.ts", disc=True, pdt=pdt(60))])],
         [media([Seg("a.ts", pdt=pdt(0)), Seg("b.ts", disc=True)])]),
    Case("independent-segments-repeated", [media(A4, header=("#EXT-X-INDEPENDENT-SEGMENTS",))],
         [media(A4, header=("#EXT-X-INDEPENDENT-SEGMENTS",) * 2)]),
    Case("content-after-endlist", [media(A4, endlist=True)],
         [media(A4, endlist=True, trailer=("#EXTINF:6.000,", "e.ts"))]),
    Case("gap-invalid", [GAPPED], [media([A4[0], Seg("b.ts", tags=("#EXT-X-GAP:YES",)), *A4[2:]])]),
    Case("gap-invalid", [GAPPED], [media(A4, footer=("#EXT-X-GAP",))]),
    Case("skip-invalid", [media(A4, version=9, header=("#EXT-X-SKIP:SKIPPED-SEGMENTS=0",))],
         [media(A4, version=9, header=("#EXT-X-SKIP:SKIPPED-SEGMENTS=x",))]),
    Case("skip-invalid", [media(A4, version=9, header=("#EXT-X-SKIP:SKIPPED-SEGMENTS=0",))],
         [media(A4, version=9, footer=("#EXT-X-SKIP:SKIPPED-SEGMENTS=0",))]),
]

B5 = segs("b.ts", "c.ts", "d.ts", "e.ts")  # BASE with a.ts removed from the front and e.ts appended
EVENT = ("#EXT-X-PLAYLIST-TYPE:EVENT",)
VOD = ("#EXT-X-PLAYLIST-TYPE:VOD",)
EFGH = media(segs("e.ts", "f.ts", "g.ts", "h.ts"), ms=4)

BETWEEN: list[Case] = [
    Case("target-duration-changed", [BASE, media(A4)], [BASE, media(A4, target=7)]),
    Case("media-sequence-decreased", [media(A4, ms=5), media(A4, ms=5)],
         [media(A4, ms=5), media([Seg("z.ts"), *A4], ms=4)]),
    Case("media-sequence-mismatch", [BASE, media(B5, ms=1)], [BASE, media(B5, ms=0)], companions=NUMBERING),
    Case("media-sequence-mismatch", [BASE, media(B5, ms=1)], [BASE, media(B5, ms=2)], companions=NUMBERING),
    Case("media-sequence-mismatch", [BASE, media(segs("w.ts", "x.ts", "y.ts"), ms=4)],
         [BASE, media(segs("w.ts", "x.ts", "y.ts"), ms=3)], companions=frozenset({"msn-uri-changed"})),
    Case("segments-removed-not-from-front", [BASE, media(segs("a.ts", "b.ts", "c.ts", "d.ts", "e.ts"))],
         [BASE, media(segs("a.ts", "b.ts", "c.ts"))]),
    Case("segments-removed-not-from-front", [BASE, media(segs("a.ts", "b.ts", "c.ts", "d.ts", "e.ts"))],
         [BASE, media(segs("a.ts", "c.ts", "d.ts", "e.ts"))], companions=NUMBERING),
    Case("segments-reordered", [BASE, BASE], [BASE, media(segs("a.ts", "b.ts", "d.ts", "c.ts"))],
         companions=NUMBERING),
    Case("segment-not-appended", [BASE, media(segs("a.ts", "b.ts", "c.ts", "d.ts", "x.ts"))],
         [BASE, media(segs("a.ts", "b.ts", "x.ts", "c.ts", "d.ts"))], companions=NUMBERING),
    Case("segment-changed", [BASE, BASE], [BASE, media([A4[0], Seg("b.ts", "5.000"), *A4[2:]])]),
    Case("segment-changed", [BASE, BASE], [BASE, media([A4[0], Seg("b.ts", disc=True), *A4[2:]])]),
    Case("segment-changed", [GAPPED, GAPPED], [GAPPED, BASE]),
    Case("segment-changed", [BASE, BASE], [BASE, GAPPED]),
    Case("segment-changed", [media([Seg("a.ts", pdt=pdt(0))])] * 2,
         [media([Seg("a.ts", pdt=pdt(0))]), media([Seg("a.ts", pdt=pdt(1))])]),
    Case("segment-changed", [media(A4, version=6, header=('#EXT-X-MAP:URI="i1.mp4"',))] * 2,
         [media(A4, version=6, header=('#EXT-X-MAP:URI="i1.mp4"',)),
          media(A4, version=6, header=('#EXT-X-MAP:URI="i2.mp4"',))]),
    Case("discontinuity-sequence-mismatch",
         [media([Seg("a.ts", disc=True), *A4[1:]]), media(B5, ms=1, dseq=1)],
         [media([Seg("a.ts", disc=True), *A4[1:]]), media(B5, ms=1)]),
    Case("discontinuity-sequence-mismatch", [media(A4, dseq=3), media(B5, ms=1, dseq=3)],
         [media(A4, dseq=3), media(B5, ms=1, dseq=4)]),
    Case("window-too-short", [BASE, media(segs("b.ts", "c.ts", "d.ts"), ms=1)],
         [BASE, media(segs("c.ts", "d.ts"), ms=2)]),
    Case("changed-after-endlist", [media(A4, endlist=True)] * 2,
         [media(A4, endlist=True), media([*A4, Seg("e.ts", disc=True)])]),
    Case("resume-without-discontinuity", [media(A4, endlist=True), media([*A4, Seg("e.ts", disc=True)])],
         [media(A4, endlist=True), media([*A4, Seg("e.ts")])], {"allow_resume_after_endlist": True}),
    Case("resume-without-discontinuity",  # ENDLIST dropped first, segments appended one version later
         [media(A4, endlist=True), BASE, media([*A4, Seg("e.ts", disc=True)])],
         [media(A4, endlist=True), BASE, media([*A4, Seg("e.ts")])], {"allow_resume_after_endlist": True}),
    Case("restart-not-above",  # a new playlist at the same address: above every number and timeline
         [BASE, media(segs("x.ts"), ms=4, dseq=1, target=7)],
         [BASE, media(segs("x.ts"), ms=4, dseq=0, target=7)], {"allow_restart": True}),
    Case("msn-uri-changed", [BASE, BASE], [BASE, media(segs("a.ts", "b.ts", "x.ts", "d.ts"))]),
    Case("msn-uri-changed", [BASE, BASE], [BASE, media(segs("a.ts", "b.ts", "c.ts", "x.ts"))]),
    Case("uri-msn-changed", [BASE, EFGH, media(segs("f.ts", "g.ts", "h.ts", "i.ts"), ms=5)],
         [BASE, EFGH, media(segs("f.ts", "g.ts", "h.ts", "a.ts"), ms=5)]),
    Case("uri-msn-changed", [BASE], [media(segs("a.ts", "b.ts", "a.ts"))]),
    Case("playlist-type-changed", [media(A4, header=EVENT)] * 2,
         [media(A4, header=EVENT), media(A4, header=VOD)], {"allow_playlist_type": True}),
    Case("event-segments-removed", [media(A4, header=EVENT), media([*A4, Seg("e.ts")], header=EVENT)],
         [media(A4, header=EVENT), media(segs("b.ts", "c.ts", "d.ts"), ms=1, header=EVENT)],
         {"allow_playlist_type": True}),
    Case("vod-playlist-changed", [media(A4, header=VOD)] * 2,
         [media(A4, header=VOD), media(B5, ms=1, header=VOD)], {"allow_playlist_type": True}),
    Case("skip-unresolvable",
         [BASE, media([Seg("e.ts")], ms=1, version=9, header=("#EXT-X-SKIP:SKIPPED-SEGMENTS=3",))],
         [BASE, media([Seg("e.ts")], ms=2, version=9, header=("#EXT-X-SKIP:SKIPPED-SEGMENTS=3",))]),
]

# (rule, a version both variants "hi" and "lo" list, the one of "lo" that breaks the rule beside it)
DATED = media([Seg("a.ts", pdt=pdt(0))])
VARIANT: list[tuple[str, str, str]] = [
    ("variant-target-duration-mismatch", BASE, media(A4, target=7)),
    ("variant-discontinuity-mismatch", media([A4[0], Seg("b.ts", disc=True), *A4[2:]]),
     media([*A4[:2], Seg("c.ts", disc=True), A4[3]])),
    ("variant-discontinuity-mismatch", media(A4, dseq=2), media(A4, dseq=1)),
    ("variant-pdt-mismatch", DATED, media([Seg("a.ts")])),
    ("variant-pdt-mismatch", DATED, media([Seg("a.ts", pdt=pdt(2))])),
]

MASTER: list[tuple[str, str]] = [
    ("extm3u-missing", GOOD_MASTER.removeprefix("#EXTM3U\n")),
    ("stream-inf-bandwidth-missing", master("#EXT-X-STREAM-INF:RESOLUTION=1280x720", "720p.m3u8")),
    ("stream-inf-bandwidth-invalid", master("#EXT-X-STREAM-INF:BANDWIDTH=2.5e6", "720p.m3u8")),
    ("stream-inf-uri-missing", master("#EXT-X-STREAM-INF:BANDWIDTH=1", "#EXT-X-STREAM-INF:BANDWIDTH=2", "b.m3u8")),
    ("stream-inf-uri-missing", master("#EXT-X-STREAM-INF:BANDWIDTH=1")),
    ("uri-not-relative", master("#EXT-X-STREAM-INF:BANDWIDTH=1", "https://cdn.example.com/720p.m3u8")),
    ("uri-not-relative", master("#EXT-X-STREAM-INF:BANDWIDTH=1", "/live/720p.m3u8")),
    ("uri-not-relative", master('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="http://x/a.m3u8"',
                                "#EXT-X-STREAM-INF:BANDWIDTH=1", "a.m3u8")),
    ("independent-segments-repeated", master("#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-INDEPENDENT-SEGMENTS",
                                             "#EXT-X-STREAM-INF:BANDWIDTH=1", "a.m3u8")),
    ("uri-not-relative", master("#EXT-X-STREAM-INF:BANDWIDTH=1", "//other.example/live/a.m3u8")),
    ("steering-repeated", master('#EXT-X-CONTENT-STEERING:SERVER-URI="s.json"',
                                 '#EXT-X-CONTENT-STEERING:SERVER-URI="s.json"', "#EXT-X-STREAM-INF:BANDWIDTH=1",
                                 "a.m3u8")),
    ("steering-server-uri-missing", master('#EXT-X-CONTENT-STEERING:PATHWAY-ID="a"',
                                           '#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID="a"', "a.m3u8")),
    ("steering-pathway-unknown", master('#EXT-X-CONTENT-STEERING:SERVER-URI="s.json",PATHWAY-ID="c"',
                                        '#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID="a"', "a.m3u8",
                                        '#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID="b"', "b/a.m3u8")),
    ("steering-pathways-differ", master('#EXT-X-CONTENT-STEERING:SERVER-URI="s.json",PATHWAY-ID="a"',
                                        '#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID="a"', "a.m3u8",
                                        '#EXT-X-STREAM-INF:BANDWIDTH=2,PATHWAY-ID="b"', "b/a.m3u8")),
    ("pathway-id-invalid", master('#EXT-X-STREAM-INF:BANDWIDTH=1,PATHWAY-ID="a b"', "a.m3u8")),
]


def _ids(cases: list[Case]) -> list[str]:
    return [f"{c[0]}-{i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("case", PER_VERSION + BETWEEN, ids=_ids(PER_VERSION + BETWEEN))
def test_good_sequence_passes_and_bad_one_breaks_exactly_its_rule(case: Case) -> None:
    rule, good, bad, allowed, companions = case
    assert feed(good, **allowed) == [[] for _ in good]
    results = feed(bad, **allowed)
    assert results[:-1] == [[] for _ in bad[:-1]]
    assert rules(results[-1]) == {rule} | companions, [str(v) for v in results[-1]]


@pytest.mark.parametrize("case", VARIANT, ids=[f"{c[0]}-{i}" for i, c in enumerate(VARIANT)])
def test_variant_rules(case: tuple[str, str, str]) -> None:
    rule, both, lo = case
    good, bad = VariantSetChecker(), VariantSetChecker()
    assert [good.check("hi", both), good.check("lo", both), bad.check("hi", both)] == [[], [], []]
    found = bad.check("lo", lo)
    assert rules(found) == {rule}, [str(v) for v in found]


def test_good_master_passes() -> None:
    assert check_master(GOOD_MASTER) == []
    assert check_master(master('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/en.m3u8"',
                               '#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="a"', "# comment", "", "v.m3u8")) == []


def test_a_steered_master_naming_the_host_asked_passes() -> None:
    text = master('#EXT-X-CONTENT-STEERING:SERVER-URI="steering.json",PATHWAY-ID="bucket"',
                  '#EXT-X-STREAM-INF:BANDWIDTH=1,STABLE-VARIANT-ID="v0",PATHWAY-ID="bucket"',
                  "//live.example:8080/live/0/playlist.m3u8",
                  '#EXT-X-STREAM-INF:BANDWIDTH=1,STABLE-VARIANT-ID="v0",PATHWAY-ID="vm"',
                  "//live.example:8080/live/vm/0/playlist.m3u8")
    assert check_master(text, host="live.example:8080") == []
    assert rules(check_master(text)) == {"uri-not-relative"}  # only for the host asked
    assert rules(check_master(text, host="other.example")) == {"uri-not-relative"}
    absolute = text.replace("//live.example:8080/", "https://live.example:8080/")
    assert check_master(absolute, host="live.example:8080") == []
    assert rules(check_master(absolute, host="other.example")) == {"uri-not-relative"}
    assert rules(check_master(text.replace("//live.example:8080/", "ftp://live.example:8080/"),
                              host="live.example:8080")) == {"uri-not-relative"}


@pytest.mark.parametrize("case", MASTER, ids=[f"{c[0]}-{i}" for i, c in enumerate(MASTER)])
def test_master_rules(case: tuple[str, str]) -> None:
    rule, text = case
    assert rules(check_master(text)) == {rule}


def test_every_documented_rule_has_a_failing_case() -> None:
    import tests.support.hls_checker as mod

    documented = {
        line.split()[0]
        for line in (mod.__doc__ or "").splitlines()
        if line[:1].islower() and "-" in line.split()[0] and len(line.split()) > 1 and line.split()[1][0].isdigit()
    }
    covered = {c[0] for c in PER_VERSION + BETWEEN} | {c[0] for c in VARIANT} | {c[0] for c in MASTER}
    assert len(documented) >= 40
    assert documented <= covered, documented - covered


# ---------------------------------------------------------------------------------------------- realistic runs


def stream_version(first: int, window: int = 5, every_disc: int = 7) -> str:
    """Version of a live playlist listing segments first..first+window-1 of an endless stream: each
    5.5..6.4 s, dated, a discontinuity (and 60 s more) when i % every_disc == 3."""

    items = [_stream_segment(i, every_disc) for i in range(first, first + window)]
    dseq = sum(1 for k in range(first) if k % every_disc == 3)
    return media(items, ms=first, dseq=dseq, header=("#EXT-X-INDEPENDENT-SEGMENTS",))


@functools.cache
def _stream_start(i: int, every_disc: int) -> float:
    """Seconds from T0 at which segment i starts (each discontinuity adds a 60 s gap)."""
    if i == 0:
        return 0.0
    gap = 60.0 if i % every_disc == 3 else 0.0
    return _stream_start(i - 1, every_disc) + float(_stream_duration(i - 1)) + gap


def _stream_duration(i: int) -> str:
    return f"{5.5 + (i * 37 % 10) / 10:.3f}"


def _stream_segment(i: int, every_disc: int) -> Seg:
    return Seg(f"seg{i:05d}.ts", _stream_duration(i), disc=i % every_disc == 3, pdt=pdt(_stream_start(i, every_disc)))


def test_sliding_window_with_discontinuities_passes_for_50_versions() -> None:
    checker = MediaPlaylistChecker(name="720p")
    texts = [stream_version(k) for k in range(50)]
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:7\n" in texts[-1]  # discontinuities did slide out
    for text in texts:
        checker.assert_ok(text)
        checker.assert_ok(text)  # identical consecutive versions are fine
    assert checker.versions == 100


def test_polling_gaps_pass_and_shifted_stream_fails() -> None:
    checker = MediaPlaylistChecker()
    for k in (0, 1, 4, 9, 10, 30, 31, 49):  # a poller that misses versions, even whole windows
        checker.assert_ok(stream_version(k))
    bad = stream_version(50).replace("#EXT-X-MEDIA-SEQUENCE:50", "#EXT-X-MEDIA-SEQUENCE:51")
    assert "media-sequence-mismatch" in rules(checker.check(bad))


def test_a_whole_window_missed_is_a_slide_not_a_new_playlist() -> None:
    # A poller under load misses a whole window with no discontinuity in it: the version it reads next
    # slid on, it is no new playlist (one that would have to start a new timeline).
    checker = MediaPlaylistChecker(allow_restart=True)
    checker.assert_ok(media(A4))
    checker.assert_ok(media(segs("k.ts", "l.ts", "m.ts", "n.ts"), ms=10))
    assert checker.restarts == 0


def test_a_new_playlist_that_ends_empty() -> None:
    """The service's variant whose new target came from another variant's lane after it had listed all
    it had: a new playlist under the new target that ends before it lists anything, on the same timeline.
    A new playlist, not a changed target (live and empty it is one); not below what came before; and its
    next segment may start above its MEDIA-SEQUENCE (numbers no version listed: no segment removed)."""
    checker = MediaPlaylistChecker(allow_restart=True, allow_resume_after_endlist=True)
    checker.assert_ok(media(A4))
    checker.assert_ok(media([], ms=4, target=12, endlist=True))
    assert checker.restarts == checker.retargets == 1
    checker.assert_ok(media([Seg("e.ts", disc=True)], ms=6, target=12))
    assert checker.restarts == 1
    below = MediaPlaylistChecker(allow_restart=True)
    below.assert_ok(media(A4, dseq=2))
    assert rules(below.check(media([], ms=4, dseq=1, target=12, endlist=True))) == {"restart-not-above"}
    live = MediaPlaylistChecker(allow_restart=True)
    live.assert_ok(media(A4))
    assert rules(live.check(media([], ms=4, target=12))) == {"target-duration-changed", "window-too-short"}


def test_variants_compare_targets_after_as_many_new_targets() -> None:
    """A new playlist in one variant under the same target (the service's variant back in Owncast's
    stream after its numbers fell behind) does not set the variants apart for good: the next new target,
    shown in one variant and then the other, is no mismatch, two targets after as many changes are. An
    empty version (a new playlist that ended empty) neither carries a date nor lacks one."""
    def seg(name: str, n: int) -> Seg:
        return Seg(f"{name}{n}.ts", pdt=pdt(6 * n))

    for lo_target, found in ((12, set()), (24, {"variant-target-duration-mismatch"})):
        checker = VariantSetChecker(allow_restart=True)
        for name in ("hi", "lo"):
            checker.assert_ok(name, media([seg(name, n) for n in range(4)]))
        checker.assert_ok("lo", media([seg("lo", 5)], ms=5, dseq=1))  # lo alone: a new playlist, target 6
        checker.assert_ok("hi", media([], ms=4, target=12, endlist=True))
        assert rules(checker.check("lo", media([seg("lo", 6)], ms=6, dseq=1, target=lo_target))) == found


def test_variant_set_of_realistic_streams_passes() -> None:
    checker = VariantSetChecker()
    for k in range(50):
        for name in ("720p", "360p"):
            text = stream_version(k).replace("seg", f"{name}/seg")
            checker.assert_ok(name, text)
    assert checker.variants == ("720p", "360p")
    assert checker.checker("720p").versions == 50


def test_disc_sequence_wrong_after_discontinuity_slides_out() -> None:
    checker = MediaPlaylistChecker()
    for k in range(4):
        checker.assert_ok(stream_version(k))
    # Version 4 removes seg00003 (which carries EXT-X-DISCONTINUITY) but forgets to bump the sequence.
    bad = stream_version(4).replace("#EXT-X-DISCONTINUITY-SEQUENCE:1", "#EXT-X-DISCONTINUITY-SEQUENCE:0")
    violations = checker.check(bad)
    assert rules(violations) == {"discontinuity-sequence-mismatch"}
    assert "seg00003.ts" in violations[0].message and "must be 1" in violations[0].message


def test_polling_gap_bounds_the_discontinuity_sequence() -> None:
    checker = MediaPlaylistChecker()
    checker.assert_ok(media(A4))
    # 10 removed, 6 of them never seen: between 0 and 6 discontinuities could have slid out unseen.
    checker.assert_ok(media(segs("k.ts", "l.ts", "m.ts"), ms=10, dseq=6))
    violations = checker.check(media(segs("l.ts", "m.ts", "n.ts"), ms=11, dseq=5))
    assert rules(violations) == {"discontinuity-sequence-mismatch"}


# ---------------------------------------------------------------------------------------------- details


INTEGER = segs("a.ts", "b.ts", dur="6")
SKIP = ("#EXT-X-SKIP:SKIPPED-SEGMENTS=0",)
# One version each, and the rules it breaks: details of PDT, version and EXTINF rounding.
ONE_VERSION: list[tuple[str, str, set[str]]] = [
    *((f"pdt {value}", media([Seg("a.ts", pdt=value)]), expected) for value, expected in (
        ("2024-05-01T10:00:00.000Z", set()),
        ("2024-05-01T10:00:00.123+02:00", set()),
        ("2024-05-01T10:00:00.123456-0530", set()),
        ("2024-05-01T10:00:00.000", {"pdt-missing-timezone"}),
        ("2024-05-01T10:00:00Z", {"pdt-missing-milliseconds"}),
        ("2024-05-01T10:00:00.5Z", {"pdt-missing-milliseconds"}),
        ("2024-05-01T10:00:00", {"pdt-missing-timezone", "pdt-missing-milliseconds"}),
        ("2024-05-01 10:00:00.000Z", {"pdt-invalid"}))),
    ("integer durations at 1", media(INTEGER, version=1), set()),
    ("integer durations at 3", media(INTEGER, version=3), set()),  # allowed when they happen to be integers
    ("integer durations at 4", media(INTEGER, version=4), {"version-too-high"}),
    ("skip at 9", media(A4, version=9, header=SKIP), set()),
    ("skip at 6", media(A4, version=6, header=SKIP), {"version-too-low"}),
    ("skip at 10", media(A4, version=10, header=SKIP), {"version-too-high"}),
    ("key with an IV at 2", media(INTEGER, version=2, header=(
        '#EXT-X-KEY:METHOD=AES-128,URI="k.bin",IV=0x00000000000000000000000000000001',)), set()),
    ("byterange at 4", media(A4, version=4, header=("#EXT-X-BYTERANGE:100@0",)), set()),
    # EXTINF rounding is half up and exact.
    ("extinf just under half over", media([Seg("a.ts", "6.49999999999999999999")]), set()),
    ("extinf half over", media([Seg("a.ts", "6.5")]), {"extinf-exceeds-target"}),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in ONE_VERSION], ids=[c[0] for c in ONE_VERSION])
def test_one_version_breaks_exactly_these_rules(text: str, expected: set[str]) -> None:
    assert rules(MediaPlaylistChecker().check(text)) == expected


def test_same_instant_written_differently_is_not_a_change() -> None:
    checker = MediaPlaylistChecker()
    checker.assert_ok(media([Seg("a.ts", pdt="2024-05-01T10:00:00.000Z")]))
    checker.assert_ok(media([Seg("a.ts", pdt="2024-05-01T12:00:00.000+02:00")]))


def test_messages_name_the_playlist_version_and_numbers() -> None:
    checker = MediaPlaylistChecker(name="720p")
    checker.assert_ok(BASE)
    [v] = checker.check(media(A4, target=7))
    assert v.rule == "target-duration-changed"
    assert v.message.startswith("[720p] version 2: ") and "6" in v.message and "7" in v.message
    assert str(v) == f"target-duration-changed: {v.message}"
    checker2 = MediaPlaylistChecker()
    checker2.assert_ok(BASE)
    msgs = [str(v) for v in checker2.check(media(B5, ms=0))]
    assert any("1 segment(s) were removed" in m and "advanced by 0" in m for m in msgs), msgs
    assert any("0: a.ts -> b.ts" in m for m in msgs), msgs


def test_assert_ok_lists_all_messages() -> None:
    checker = MediaPlaylistChecker()
    with pytest.raises(AssertionError) as info:
        checker.assert_ok(media(A4, version=None, target=None))
    assert "version-missing" in str(info.value) and "target-duration-missing" in str(info.value)
    assert checker.versions == 1


def test_number_never_reused_even_after_it_slid_out() -> None:
    checker = MediaPlaylistChecker()
    checker.assert_ok(BASE)
    checker.assert_ok(media(segs("e.ts", "f.ts", "g.ts", "h.ts"), ms=4))
    # A restart that goes back to 0 with new names: both the regression and the remapping are reported.
    violations = checker.check(media(segs("p.ts", "q.ts", "r.ts", "s.ts"), ms=0))
    assert rules(violations) == {"media-sequence-decreased", "msn-uri-changed"}


def test_resume_after_endlist_when_allowed() -> None:
    checker = MediaPlaylistChecker(allow_resume_after_endlist=True)
    checker.assert_ok(media(A4, endlist=True))
    checker.assert_ok(media(A4, endlist=True))
    checker.assert_ok(media([*A4, Seg("e.ts", disc=True), Seg("f.ts")]))
    checker.assert_ok(media([*A4[1:], Seg("e.ts", disc=True), Seg("f.ts")], ms=1))
    # Still an error when not allowed.
    strict = MediaPlaylistChecker()
    strict.assert_ok(media(A4, endlist=True))
    assert rules(strict.check(media(A4))) == {"changed-after-endlist"}


def test_delta_update_is_expanded_from_the_previous_version() -> None:
    checker = MediaPlaylistChecker()
    checker.assert_ok(media([Seg("a.ts", disc=True), *A4[1:]]))
    skip = ("#EXT-X-SKIP:SKIPPED-SEGMENTS=2",)
    # Skips b, c (msn 1, 2); a.ts (with its discontinuity) slid out, so the sequence must be 1.
    checker.assert_ok(media([Seg("d.ts"), Seg("e.ts")], ms=1, dseq=1, version=9, header=skip))
    violations = checker.check(media([Seg("x.ts"), Seg("e.ts")], ms=1, dseq=1, version=9, header=skip))
    assert rules(violations) == {"msn-uri-changed"}


def test_allowed_playlist_types() -> None:
    checker = MediaPlaylistChecker(allow_playlist_type=True)
    checker.assert_ok(media(A4, header=EVENT))
    checker.assert_ok(media([*A4, Seg("e.ts")], header=EVENT, endlist=True))


def lines_run(call: Callable[[], None]) -> int:
    """How many lines of Python `call` executes: a count of work that no machine's load changes."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        count += event == "line"
        return tracer

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return count


def test_soak_work_per_version_does_not_grow_with_history() -> None:
    # O(window) per version, not O(history): a version checked after 290 others runs no more lines than
    # one checked after 50 (the same window, two whole discontinuity cycles each); any walk over the
    # history adds lines that grow with it (a walk over the 240 versions between: about +240). Counted in
    # lines run, not timed; the same window differs by up to ~25 lines between runs (set order under hash
    # randomisation), hence the slack of 100, well under what a walk adds.
    checker = MediaPlaylistChecker()
    work: dict[int, int] = {}
    counted = {*range(50, 64), *range(286, 300)}  # only these traced: tracing is slow
    for k in range(300):
        text = stream_version(k, window=10)
        if k in counted:
            work[k] = lines_run(lambda: checker.assert_ok(text))  # noqa: B023 (called at once)
        else:
            checker.assert_ok(text)
    early, late = [work[k] for k in range(50, 64)], [work[k] for k in range(286, 300)]
    assert max(late) <= max(early) + 100, (early, late)


def test_observed_compares_no_gaps_bytes() -> None:
    """A variant that lacks a moment the others list has a gap there (EXT-X-GAP: its URI holds no media):
    tests/support/whole compares the bytes of every segment listed, not of gaps."""
    from pathlib import Path
    from typing import cast

    from tests.support.observe import Observed

    class Folders:
        def variant_dir(self, variant: int) -> Path:
            return Path("/hls") / str(variant)

    seen = Observed()
    seen.note_ours(1, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:3\n"
                      "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:03.000Z\n#EXTINF:1.000,\nlive/1/s-3.ts\n"
                      "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:04.000Z\n#EXT-X-GAP\n#EXTINF:1.000,\nlive/1/s-4.ts\n"
                      "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:05.000Z\n#EXTINF:1.000,\nlive/1/s-5.ts\n")
    assert sorted(seen.ours[1]) == [3, 4, 5]
    assert seen.listed_files(cast("OwncastEmulator", Folders())) == [
        ("live/1/s-3.ts", Path("/hls/1/s-3.ts")), ("live/1/s-5.ts", Path("/hls/1/s-5.ts"))]
    # Fetched from a URL, each URI is kept as a player resolves it: a bucket URL as it is, the VM's path
    # (players steered away from the bucket) on the service's host.
    seen = Observed()
    seen.note_ours(0, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n"
                      "#EXTINF:1.000,\nhttp://bucket.example/live/0/s-7.ts\n#EXTINF:1.000,\n/live/vm/0/s-8.ts\n",
                   "http://127.0.0.1:8080/live/0/playlist.m3u8")
    assert [uri for uri, _ in seen.ours[0].values()] == [
        "http://bucket.example/live/0/s-7.ts", "http://127.0.0.1:8080/live/vm/0/s-8.ts"]
    # Checked once the service is gone (test_faults_restart): the VM's URI is looked for in the bucket.
    assert seen.listed_files(cast("OwncastEmulator", Folders()), bucket="http://bucket.example") == [
        ("http://bucket.example/live/0/s-7.ts", Path("/hls/0/s-7.ts")),
        ("http://bucket.example/live/0/s-8.ts", Path("/hls/0/s-8.ts"))]
