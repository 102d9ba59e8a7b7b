"""Independent checker for live HLS playlists, one version at a time and between consecutive versions.

It has its own small line parser on purpose: it must not share code (or bugs) with the generator it checks,
and it does no I/O. Each new version of a media playlist goes to a ``MediaPlaylistChecker`` (or ``(variant,
text)`` to a ``VariantSetChecker``), which returns a list of ``Violation``. A check costs O(window) per
version; the only state that grows is one dict entry per media sequence number and per URI. Section numbers
are draft-pantos-hls-rfc8216bis's (docs/hls-rules.md). The rule ids:

Per version of a media playlist:

extm3u-missing 4.4.1.1: the first line is not exactly ``#EXTM3U``
tag-duplicated 4.4.3: a tag allowed once (VERSION, TARGETDURATION, ...) repeats
version-missing 4.4.1.2: no EXT-X-VERSION
version-invalid 4.4.1.2: EXT-X-VERSION is not a decimal integer
version-too-low 8: EXT-X-VERSION below what the features used need
version-too-high 8: EXT-X-VERSION above what is needed (3 is allowed when only integer EXTINF durations happen
    to be listed)
target-duration-missing 4.4.3.1: no EXT-X-TARGETDURATION
target-duration-invalid 4.4.3.1: EXT-X-TARGETDURATION is not an integer >= 1
extinf-invalid 4.4.4.1: EXTINF is not ``<decimal>,[title]``
extinf-exceeds-target 4.4.3.1: an EXTINF rounded to the nearest integer > target duration
segment-missing-extinf 4.4.4.1: a URI line without a preceding EXTINF
segment-uri-missing 4.4.4: an EXTINF not followed by a URI line
media-sequence-invalid 4.4.3.2: EXT-X-MEDIA-SEQUENCE is not a decimal integer
media-sequence-after-segment 4.4.3.2: EXT-X-MEDIA-SEQUENCE after the first segment
discontinuity-sequence-invalid 4.4.3.3: EXT-X-DISCONTINUITY-SEQUENCE is not a decimal integer
discontinuity-sequence-after-segment 4.4.3.3: EXT-X-DISCONTINUITY-SEQUENCE after the first segment
playlist-type-present 6.2.2: EXT-X-PLAYLIST-TYPE in a live playlist (unless allowed)
playlist-type-invalid 4.4.3.5: EXT-X-PLAYLIST-TYPE other than EVENT or VOD (when allowed)
pdt-invalid 4.4.4.6: EXT-X-PROGRAM-DATE-TIME is not an ISO 8601 date-time
pdt-missing-timezone 4.4.4.6: EXT-X-PROGRAM-DATE-TIME without a time zone
pdt-missing-milliseconds 4.4.4.6: EXT-X-PROGRAM-DATE-TIME with fewer than 3 fraction digits
pdt-missing-after-discontinuity 6.2.1: PDT is used, but a segment carrying EXT-X-DISCONTINUITY has none
independent-segments-repeated 4.4.2.1: EXT-X-INDEPENDENT-SEGMENTS more than once
content-after-endlist 4.4.3.4: any non-blank line after EXT-X-ENDLIST
skip-invalid 4.4.5.2: EXT-X-SKIP without a valid SKIPPED-SEGMENTS, or after a segment
gap-invalid 4.4.4.7: EXT-X-GAP with a value, or not followed by a segment

Between versions of one media playlist (the previous version, and for numbers/URIs all history):

target-duration-changed 6.2.1: EXT-X-TARGETDURATION differs from the previous version
media-sequence-decreased 6.2.2: EXT-X-MEDIA-SEQUENCE went down
media-sequence-mismatch 6.2.2: segments removed from the front != media sequence delta
segments-removed-not-from-front 6.2.2: a segment vanished that was not at the front
segments-reordered 6.2.1: retained segments changed their relative order
segment-not-appended 6.2.1: a new segment appears before a retained one
segment-changed 6.2.1: a retained segment changed duration, discontinuity flag, program date-time, EXT-X-MAP
    or EXT-X-GAP
discontinuity-sequence-mismatch 6.2.2: DISCONTINUITY-SEQUENCE != previous + removed segments that carried
    EXT-X-DISCONTINUITY
window-too-short 6.2.2: segments were removed, no ENDLIST, and the playlist lasts less than 3 target durations
changed-after-endlist 4.4.3.4: a version after one with EXT-X-ENDLIST differs from it
resume-without-discontinuity 4.4.4.3: (allow_resume_after_endlist) the first segment appended after an ENDLIST
    does not carry EXT-X-DISCONTINUITY
msn-uri-changed 6.2.2: a media sequence number maps to another URI than before
uri-msn-changed 6.2.2: a URI is listed under two media sequence numbers
playlist-type-changed 4.4.3.5: (allow_playlist_type) EXT-X-PLAYLIST-TYPE changed
event-segments-removed 4.4.3.5: (allow_playlist_type) an EVENT playlist lost segments
vod-playlist-changed 4.4.3.5: (allow_playlist_type) a VOD playlist changed
skip-unresolvable 6.2.5.1: a delta update skips segments the checker has not seen
restart-not-above 6.2.2: (allow_restart) a new playlist at the same address whose first number is not above
    every one listed before, or whose discontinuity number is not above the last one, unless its dates go on
    from there (the same timeline)

Across the variants of one stream (``VariantSetChecker``):

variant-target-duration-mismatch 6.2.4: variants have different target durations
variant-discontinuity-mismatch 6.2.4: one media sequence number, two discontinuity numbers
variant-pdt-mismatch 6.2.4: one variant carries PDT and another not, or the same media sequence number has
    different PDTs

Multivariant playlist (``check_master``): extm3u-missing, independent-segments-repeated,
stream-inf-bandwidth-missing / stream-inf-bandwidth-invalid (4.4.6.2: BANDWIDTH is a required decimal
integer), stream-inf-uri-missing (4.4.6.2: the next line must be a URI), uri-not-relative (our service
serves relative variant URIs: no scheme, no leading '/').

Conventions: a segment's discontinuity number is DISCONTINUITY-SEQUENCE plus the EXT-X-DISCONTINUITY tags
on it and before it in the playlist (what hls.js calls ``cc``); an absent MEDIA-SEQUENCE or
DISCONTINUITY-SEQUENCE is 0.  Tags the parser does not know are ignored.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Final

__all__ = ["MediaPlaylistChecker", "VariantSetChecker", "Violation", "check_master"]


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``rule`` is a stable short id (see the module docstring), ``message`` a sentence."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


# ---------------------------------------------------------------------------------------------- parsing

_INT_RE: Final = re.compile(r"[0-9]+")
_EXTINF_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?),(.*)")
_ATTR_RE: Final = re.compile(r'\s*([A-Z0-9-]+)=("[^"]*"|[^",]*)\s*(?:,|$)')
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_PDT_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)
# Tags that may appear at most once in a media playlist (4.4.1.2, 4.4.3).
_SINGLE_TAGS: Final = frozenset({"#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE",
                                 "#EXT-X-DISCONTINUITY-SEQUENCE", "#EXT-X-PLAYLIST-TYPE", "#EXT-X-ENDLIST",
                                 "#EXT-X-I-FRAMES-ONLY", "#EXT-X-SKIP"})
_EXAMPLES: Final = 5
# The two numbering tags: their rules' prefix and the _Parsed field each sets.
_SEQUENCE_TAGS: Final = {"#EXT-X-MEDIA-SEQUENCE": ("media-sequence", "media_sequence"),
                         "#EXT-X-DISCONTINUITY-SEQUENCE": ("discontinuity-sequence", "disc_sequence")}

PdtKey = Decimal | str | None
"""A program date-time as an instant (epoch seconds) when it parses, else its raw text; None if absent."""


def _attrs(value: str) -> dict[str, str]:
    """Parse an attribute list (4.2); quoted values keep no quotes. Stops at the first malformed pair."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        m = _ATTR_RE.match(value, pos)
        if m is None or m.end() == pos:
            break
        raw = m.group(2)
        out[m.group(1)] = raw[1:-1] if raw.startswith('"') else raw
        pos = m.end()
    return out


def _raise(violations: list[Violation]) -> None:
    if violations:
        raise AssertionError("\n".join(str(v) for v in violations))


def _summary(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown if len(items) <= _EXAMPLES else f"{shown} (and {len(items) - _EXAMPLES} more)"


@functools.lru_cache(maxsize=4096)  # a sliding window shows each value about window-size times
def _parse_pdt(text: str) -> tuple[Decimal | None, tuple[str, ...]]:
    """Return (instant in epoch seconds or None, rule ids broken by the value)."""
    m = _PDT_RE.fullmatch(text)
    if m is None:
        return None, ("pdt-invalid",)
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    frac, zulu, sign, oh, om = m.group(7, 8, 9, 10, 11)
    offset = 0
    if sign is not None:
        ohi, omi = int(oh), int(om or "0")
        if ohi > 23 or omi > 59:
            return None, ("pdt-invalid",)
        offset = (ohi * 3600 + omi * 60) * (1 if sign == "+" else -1)
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h <= 23 and mi <= 59 and s <= 59):
        return None, ("pdt-invalid",)
    rules: list[str] = []
    if zulu is None and sign is None:
        rules.append("pdt-missing-timezone")
    if frac is None or len(frac) < 3:
        rules.append("pdt-missing-milliseconds")
    instant = Decimal(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset)
    if frac is not None:
        instant += Decimal("0." + frac)
    return instant, tuple(rules)


class _Findings(list[tuple[str, str]]):
    """(rule, message) pairs; messages get their "[name] version N: " prefix when turned into Violations."""

    def add(self, rule: str, message: str) -> None:
        self.append((rule, message))


@dataclass(frozen=True, slots=True)
class _Segment:
    msn: int
    uri: str
    duration: Decimal
    discontinuity: bool
    pdt: PdtKey
    pdt_text: str | None
    map_attrs: str | None
    dnum: int  # discontinuity number (hls.js "cc")
    gap: bool = False  # EXT-X-GAP: its URI holds no media (4.4.4.7)


@dataclass
class _Parsed:
    lines: list[str]
    version: int | None = None
    target: int | None = None
    media_sequence: int = 0
    disc_sequence: int = 0
    sequence_ok: bool = True  # MEDIA-SEQUENCE / DISCONTINUITY-SEQUENCE parsed
    playlist_type: str | None = None
    endlist: bool = False
    skipped: int = 0
    segments: list[_Segment] = field(default_factory=list)
    findings: _Findings = field(default_factory=_Findings)

    @property
    def end(self) -> int:
        """Media sequence number one past the last segment."""
        return self.media_sequence + len(self.segments)

    def uses_pdt(self) -> bool:
        return any(s.pdt_text is not None for s in self.segments)


def _new_playlist(prev: _Parsed, cur: _Parsed) -> bool:
    """Whether `cur`, which shares no segment with `prev` and starts at or above its end, is a new
    playlist at the same address: another target, or another timeline. An empty one only ended (a new
    playlist that ends before it lists anything: the service's variant whose new target came from
    another variant's lane after it had listed all it had); after an empty one, a timeline counted in
    EXT-X-DISCONTINUITY-SEQUENCE (no segment of the empty one carries it)."""
    if not cur.segments:
        return cur.endlist and cur.target != prev.target
    if not prev.segments:
        return cur.target != prev.target or cur.disc_sequence > prev.disc_sequence
    return cur.target != prev.target or cur.segments[0].dnum != prev.segments[-1].dnum


def _goes_on(prev: _Parsed, cur: _Parsed) -> bool:
    """A new playlist under the same discontinuity number continues the old one's timeline (variants
    cut apart, raised from one of them): its first date is at or after the old one's last segment ended (half a
    second of rounding), and no further ahead than a reader that missed versions can have missed. `prev`:
    the last version that listed segments."""
    first, last = cur.segments[0], prev.segments[-1]
    if not isinstance(first.pdt, Decimal) or not isinstance(last.pdt, Decimal):
        return False  # no dates: nothing shows that the timeline goes on
    gap = first.pdt - (last.pdt + last.duration)
    listed = sum((s.duration for s in prev.segments), Decimal(0))
    return Decimal("-0.5") <= gap <= max(listed, Decimal(cur.target or 0))


def _renumber(segments: list[_Segment], media_sequence: int, disc_sequence: int) -> list[_Segment]:
    out: list[_Segment] = []
    d = disc_sequence
    for i, s in enumerate(segments):
        if s.discontinuity:
            d += 1
        out.append(_Segment(media_sequence + i, s.uri, s.duration, s.discontinuity, s.pdt, s.pdt_text,
                            s.map_attrs, d, s.gap))
    return out


def _parse_media(text: str, allow_playlist_type: bool) -> _Parsed:
    lines = [ln.rstrip() for ln in text.split("\n")]
    nonblank = [ln for ln in lines if ln]
    p = _Parsed(lines=nonblank)
    add = p.findings.add

    if not lines or lines[0] != "#EXTM3U":
        add("extm3u-missing", f"the first line must be #EXTM3U, got {(lines[0] if lines else '')[:60]!r}")

    counts: dict[str, int] = {}
    independent = 0
    # Features that need a protocol version (section 8): version -> what needs it.
    needs: dict[int, str] = {}
    fractional: list[str] = []
    iframes_only = False
    has_map = False
    raw: list[_Segment] = []
    pending_extinf: tuple[Decimal, str] | None = None
    pending_disc = False
    pending_pdt: tuple[PdtKey, str] | None = None
    pending_gap = False
    gap_bad: list[str] = []
    current_map: str | None = None
    in_segments = False
    endlist_seen = False
    after_endlist: list[str] = []
    pdt_bad: dict[str, list[str]] = {}
    extinf_bad: list[str] = []
    uri_missing: list[str] = []
    extinf_missing: list[str] = []

    # A damaged first line is reported above; it is parsed like the others unless it holds the header.
    for ln in lines[1:] if "#EXTM3U" in lines[0] else lines:
        if not ln:
            continue
        if endlist_seen:
            after_endlist.append(ln)
        if not ln.startswith("#"):
            # A URI line closes the segment.
            if pending_extinf is None:
                extinf_missing.append(ln)
                duration = Decimal(0)
            else:
                duration = pending_extinf[0]
            pdt, pdt_text = pending_pdt if pending_pdt is not None else (None, None)
            raw.append(_Segment(0, ln, duration, pending_disc, pdt, pdt_text, current_map, 0, pending_gap))
            pending_extinf, pending_disc, pending_pdt, pending_gap = None, False, None, False
            in_segments = True
            continue
        if not ln.startswith("#EXT"):
            continue  # comment
        name, _, value = ln.partition(":")
        if name in _SINGLE_TAGS:
            counts[name] = counts.get(name, 0) + 1
        if name == "#EXTINF":
            if pending_extinf is not None:
                uri_missing.append(f"#EXTINF:{pending_extinf[1]}")
            in_segments = True
            m = _EXTINF_RE.fullmatch(value)
            if m is None:
                extinf_bad.append(ln)
                pending_extinf = (Decimal(0), value)
            else:
                pending_extinf = (Decimal(m.group(1)), value)
                if "." in m.group(1):
                    fractional.append(m.group(1))
        elif name == "#EXT-X-DISCONTINUITY":
            pending_disc = True
        elif name == "#EXT-X-GAP":
            # 4.4.4.7: a tag without a value, applying to the next media segment only.
            if value or ln != "#EXT-X-GAP":
                gap_bad.append(ln)
            pending_gap = True
        elif name == "#EXT-X-PROGRAM-DATE-TIME":
            instant, broken = _parse_pdt(value)
            for rule in broken:
                pdt_bad.setdefault(rule, []).append(value)
            pending_pdt = (instant if instant is not None else value, value)
        elif name == "#EXT-X-MAP":
            has_map = True
            current_map = value
        elif name == "#EXT-X-BYTERANGE":
            needs.setdefault(4, "EXT-X-BYTERANGE")
        elif name == "#EXT-X-I-FRAMES-ONLY":
            iframes_only = True
            needs.setdefault(4, "EXT-X-I-FRAMES-ONLY")
        elif name == "#EXT-X-KEY":
            a = _attrs(value)
            if "IV" in a:
                needs.setdefault(2, "the IV attribute of EXT-X-KEY")
            if "KEYFORMAT" in a or "KEYFORMATVERSIONS" in a:
                needs.setdefault(5, "KEYFORMAT/KEYFORMATVERSIONS in EXT-X-KEY")
        elif name == "#EXT-X-DEFINE":
            needs.setdefault(8, "EXT-X-DEFINE")
        elif name == "#EXT-X-SKIP":
            needs.setdefault(9, "EXT-X-SKIP")
            n = _attrs(value).get("SKIPPED-SEGMENTS", "")
            if in_segments or not _INT_RE.fullmatch(n):
                where = "after the first segment" if in_segments else f"SKIPPED-SEGMENTS={n!r}"
                add("skip-invalid", f"EXT-X-SKIP must precede all segments and give SKIPPED-SEGMENTS "
                    f"as a decimal integer ({where}): {ln!r}")
            else:
                p.skipped = int(n)
        elif name == "#EXT-X-VERSION":
            if _INT_RE.fullmatch(value):
                p.version = int(value)
            else:
                add("version-invalid", f"EXT-X-VERSION must be a decimal integer, got {value!r}")
        elif name == "#EXT-X-TARGETDURATION":
            if _INT_RE.fullmatch(value) and int(value) >= 1:
                p.target = int(value)
            else:
                add("target-duration-invalid",
                    f"EXT-X-TARGETDURATION must be a decimal integer >= 1, got {value!r}")
        elif name in _SEQUENCE_TAGS:
            rule, field_name = _SEQUENCE_TAGS[name]
            if in_segments:
                add(f"{rule}-after-segment", f"{name[1:]} must come before the first segment")
            if _INT_RE.fullmatch(value):
                setattr(p, field_name, int(value))
            else:
                p.sequence_ok = False
                add(f"{rule}-invalid", f"{name[1:]} must be a decimal integer, got {value!r}")
        elif name == "#EXT-X-PLAYLIST-TYPE":
            p.playlist_type = value
            if not allow_playlist_type:
                add("playlist-type-present",
                    f"a live sliding playlist must not carry EXT-X-PLAYLIST-TYPE (found {value!r})")
            elif value not in ("EVENT", "VOD"):
                add("playlist-type-invalid", f"EXT-X-PLAYLIST-TYPE must be EVENT or VOD, got {value!r}")
        elif name == "#EXT-X-ENDLIST":
            p.endlist = True
            endlist_seen = True
        elif name == "#EXT-X-INDEPENDENT-SEGMENTS":
            independent += 1
    if pending_extinf is not None:
        uri_missing.append(f"#EXTINF:{pending_extinf[1]}")
    if pending_gap:
        gap_bad.append("#EXT-X-GAP at the end, with no segment after it")

    p.segments = _renumber(raw, p.media_sequence + p.skipped, p.disc_sequence)

    for name, count in counts.items():
        if count > 1:
            add("tag-duplicated", f"{name[1:]} may appear once but appears {count} times")
    if independent > 1:
        add("independent-segments-repeated", f"EXT-X-INDEPENDENT-SEGMENTS appears {independent} times")
    if after_endlist:
        add("content-after-endlist",
            f"nothing may follow EXT-X-ENDLIST, found {len(after_endlist)} line(s): {_summary(after_endlist)}")
    if extinf_bad:
        add("extinf-invalid", f"EXTINF must be '#EXTINF:<decimal duration>,[title]': {_summary(extinf_bad)}")
    if extinf_missing:
        add("segment-missing-extinf",
            f"segment URI(s) without a preceding EXTINF: {_summary(extinf_missing)}")
    if uri_missing:
        add("segment-uri-missing", f"EXTINF not followed by a segment URI: {_summary(uri_missing)}")
    if gap_bad:
        add("gap-invalid", f"EXT-X-GAP takes no value and applies to the next segment: {_summary(gap_bad)}")

    # Protocol version (section 8).
    if fractional:
        needs.setdefault(3, f"fractional EXTINF durations (e.g. {fractional[0]})")
    if has_map:
        needs.setdefault(5 if iframes_only else 6,
                         "EXT-X-MAP" + (" with EXT-X-I-FRAMES-ONLY" if iframes_only else ""))
    required = max(needs, default=1)
    why = needs.get(required, "no feature beyond version 1")
    if counts.get("#EXT-X-VERSION", 0) == 0:
        add("version-missing", f"EXT-X-VERSION is missing (this playlist needs {required}: {why})")
    elif p.version is not None:
        if p.version < required:
            add("version-too-low", f"EXT-X-VERSION is {p.version} but {why} needs {required}")
        elif p.version > required and not (p.version == 3 and required < 3):
            add("version-too-high", f"EXT-X-VERSION is {p.version} but only {required} is needed ({why})")

    # Target duration (4.4.3.1).
    if counts.get("#EXT-X-TARGETDURATION", 0) == 0:
        add("target-duration-missing", "EXT-X-TARGETDURATION is missing")
    elif p.target is not None:
        over = [f"{s.uri} ({s.duration}s)" for s in p.segments
                if s.duration.to_integral_value(rounding=ROUND_HALF_UP) > p.target]
        if over:
            add("extinf-exceeds-target",
                f"EXTINF rounded to the nearest integer exceeds EXT-X-TARGETDURATION {p.target}: {_summary(over)}")

    # Program date-time (4.4.4.6, 6.2.1).
    for rule, what in (("pdt-invalid", "is not an ISO 8601 date-time"),
                       ("pdt-missing-timezone", "has no time zone"),
                       ("pdt-missing-milliseconds", "has no millisecond precision")):
        if rule in pdt_bad:
            add(rule, f"EXT-X-PROGRAM-DATE-TIME {what}: {_summary(pdt_bad[rule])}")
    if p.uses_pdt():
        bare = [f"{s.uri} (media sequence {s.msn})" for s in p.segments
                if s.discontinuity and s.pdt_text is None]
        if bare:
            add("pdt-missing-after-discontinuity",
                f"the playlist uses EXT-X-PROGRAM-DATE-TIME but these segments carry EXT-X-DISCONTINUITY "
                f"without one: {_summary(bare)}")
    return p


# ---------------------------------------------------------------------------------------------- media checker


class MediaPlaylistChecker:
    """Checks each version of one media playlist on its own and against the versions fed before it."""

    def __init__(self, *, allow_resume_after_endlist: bool = False, allow_playlist_type: bool = False,
                 name: str = "", allow_restart: bool = False) -> None:
        self.allow_resume_after_endlist = allow_resume_after_endlist
        # The service's one departure for a new target duration (docs/hls-rules.md): a version that
        # shares no segment with the previous one may start a new playlist at the same address, with
        # another target, if every number and discontinuity number in it is above all seen before; also
        # one that ends empty (_new_playlist).
        self.allow_restart = allow_restart
        self.restarts = 0
        self.retargets = 0  # the restarts that changed the target
        self.allow_playlist_type = allow_playlist_type
        self.name = name
        self._versions = 0
        self._prev: _Parsed | None = None
        self._msn_to_uri: dict[int, str] = {}
        self._uri_to_msn: dict[str, int] = {}
        self._resume_msn: int | None = None  # first media sequence number after an ENDLIST
        self._highest_msn = -1
        self._listing: _Parsed | None = None  # the last version that listed segments (a new playlist's anchor)

    @property
    def versions(self) -> int:
        """How many versions have been checked."""
        return self._versions

    def check(self, text: str) -> list[Violation]:
        """Check one version on its own and against every earlier version fed to this checker."""
        return self._check(text)[0]

    def assert_ok(self, text: str) -> None:
        """``check`` and raise AssertionError listing every violation, if any."""
        _raise(self.check(text))

    # -- internals

    def _check(self, text: str) -> tuple[list[Violation], _Parsed, bool]:
        """Return (violations, parsed version, whether its segment numbering can be trusted)."""
        self._versions += 1
        cur = _parse_media(text, self.allow_playlist_type)
        findings = cur.findings
        prev = self._prev
        trusted = cur.sequence_ok
        if trusted and cur.skipped:
            trusted = self._expand_skip(prev, cur, findings)
        # A version sharing no segment with the previous one is a new playlist at the same address, unless
        # it keeps the target and the timeline (no discontinuity in between): then a polling reader merely
        # missed a whole window sliding by, and the usual checks apply.
        restart = (self.allow_restart and trusted and prev is not None
                   and not {s.uri for s in prev.segments} & {s.uri for s in cur.segments}
                   and cur.media_sequence >= prev.end and _new_playlist(prev, cur))
        if restart:
            assert prev is not None
            self.restarts += 1
            self.retargets += cur.target != prev.target
            self._resume_msn = None  # the new timeline is counted in DISCONTINUITY-SEQUENCE
            anchor = self._listing
            last = anchor.segments[-1].dnum if anchor is not None else prev.disc_sequence
            # Empty, its next segment's number is at least its DISCONTINUITY-SEQUENCE; the same as the last
            # one only where the dates go on, which that segment shows (checked then, against `anchor`).
            first = cur.segments[0].dnum if cur.segments else cur.disc_sequence
            if cur.media_sequence < self._highest_msn + 1 or not (first > last or (first == last and (
                    not cur.segments or (anchor is not None and _goes_on(anchor, cur))))):
                findings.add("restart-not-above",
                             f"a new playlist must start above everything before it: media sequence "
                             f"{cur.media_sequence} (highest seen {self._highest_msn}), discontinuity number "
                             f"{first} (last seen {last}; the same only where the dates go on)")
        elif prev is not None:
            self._compare_headers(prev, cur, findings)
        if trusted:
            if prev is not None and not restart:
                self._compare_segments(prev, cur, findings)
            if cur.segments:
                self._highest_msn = max(self._highest_msn, cur.segments[-1].msn)
                self._listing = cur
            self._check_history(cur, findings)
            self._check_resume(cur, findings)
            self._prev = cur
        prefix = (f"[{self.name}] " if self.name else "") + f"version {self._versions}: "
        return [Violation(rule, prefix + msg) for rule, msg in findings], cur, trusted

    def _expand_skip(self, prev: _Parsed | None, cur: _Parsed, findings: _Findings) -> bool:
        """Replace the segments a delta update skipped by those of the previous version (6.2.5.1)."""
        known = {s.msn: s for s in prev.segments} if prev is not None else {}
        wanted = range(cur.media_sequence, cur.media_sequence + cur.skipped)
        missing = [n for n in wanted if n not in known]
        if missing:
            findings.add("skip-unresolvable",
                         f"EXT-X-SKIP skips {cur.skipped} segment(s) but the previous version checked did "
                         f"not list media sequence {missing[0]}..{missing[-1]}")
            return False
        cur.segments = _renumber([known[n] for n in wanted] + cur.segments, cur.media_sequence,
                                 cur.disc_sequence)
        return True

    def _compare_headers(self, prev: _Parsed, cur: _Parsed, findings: _Findings) -> None:
        if prev.target is not None and cur.target is not None and prev.target != cur.target:
            findings.add("target-duration-changed",
                         f"EXT-X-TARGETDURATION changed from {prev.target} to {cur.target}")
        if self.allow_playlist_type:
            if prev.playlist_type != cur.playlist_type:
                findings.add("playlist-type-changed",
                             f"EXT-X-PLAYLIST-TYPE changed from {prev.playlist_type} to {cur.playlist_type}")
            elif prev.playlist_type == "VOD" and prev.lines != cur.lines:
                findings.add("vod-playlist-changed",
                             "a VOD playlist must never change, but this version differs")
        if prev.endlist and prev.lines != cur.lines and not self.allow_resume_after_endlist:
            findings.add("changed-after-endlist",
                         "the previous version ended with EXT-X-ENDLIST, so this one must be identical to "
                         f"it, but it differs (media sequence {prev.media_sequence} -> {cur.media_sequence}, "
                         f"{len(prev.segments)} -> {len(cur.segments)} segments, "
                         f"ENDLIST {'kept' if cur.endlist else 'dropped'})")

    def _compare_segments(self, prev: _Parsed, cur: _Parsed, findings: _Findings) -> None:
        add = findings.add
        if cur.lines == prev.lines:
            return
        ms_p, ms_c = prev.media_sequence, cur.media_sequence
        if ms_c < ms_p:
            add("media-sequence-decreased", f"EXT-X-MEDIA-SEQUENCE decreased from {ms_p} to {ms_c}")
            return
        removed = ms_c - ms_p
        psegs, csegs = prev.segments, cur.segments
        prev_idx: dict[str, int] = {}
        for i, s in enumerate(psegs):
            prev_idx.setdefault(s.uri, i)
        cur_uris = {s.uri for s in csegs}
        # Same number, different URI, neither URI elsewhere in the other version: a plain replacement,
        # reported as msn-uri-changed only (not also as a removal plus an insertion).
        replaced_prev: set[str] = set()
        replaced_cur: set[str] = set()
        for s in csegs:
            i = s.msn - ms_p
            if 0 <= i < len(psegs):
                old = psegs[i].uri
                if old != s.uri and old not in cur_uris and s.uri not in prev_idx:
                    replaced_prev.add(old)
                    replaced_cur.add(s.uri)
        retained = [(j, prev_idx[s.uri]) for j, s in enumerate(csegs) if s.uri in prev_idx]
        structural_ok = True
        if retained:
            first_j, first_i = retained[0]
            if first_i != removed:
                structural_ok = False
                add("media-sequence-mismatch",
                    f"{first_i} segment(s) were removed from the front (the first one kept, {csegs[first_j].uri}, "
                    f"was media sequence {ms_p + first_i}) but EXT-X-MEDIA-SEQUENCE advanced by {removed} "
                    f"({ms_p} -> {ms_c})")
            moved = [f"{csegs[b[0]].uri}" for a, b in pairwise(retained) if b[1] <= a[1]]
            if moved:
                structural_ok = False
                add("segments-reordered", f"retained segments changed order: {_summary(moved)} moved back")
            gone = [f"{psegs[i].uri} (media sequence {ms_p + i})" for i in range(first_i, len(psegs))
                    if psegs[i].uri not in cur_uris and psegs[i].uri not in replaced_prev]
            if gone:
                structural_ok = False
                add("segments-removed-not-from-front",
                    f"segments may only be removed from the front, but these vanished: {_summary(gone)}")
            last_j = retained[-1][0]
            inserted = [csegs[j].uri for j in range(last_j)
                        if csegs[j].uri not in prev_idx and csegs[j].uri not in replaced_cur]
            if inserted:
                structural_ok = False
                add("segment-not-appended",
                    f"new segments may only be appended at the end, but these come before a retained one: "
                    f"{_summary(inserted)}")
            changed: list[str] = []
            for j, i in retained:
                a, b = psegs[i], csegs[j]
                diffs = []
                if a.duration != b.duration:
                    diffs.append(f"duration {a.duration} -> {b.duration}")
                if a.discontinuity != b.discontinuity:
                    diffs.append(f"EXT-X-DISCONTINUITY {'removed' if a.discontinuity else 'added'}")
                if a.pdt != b.pdt:
                    diffs.append(f"PROGRAM-DATE-TIME {a.pdt_text} -> {b.pdt_text}")
                if a.map_attrs != b.map_attrs:
                    diffs.append(f"EXT-X-MAP {a.map_attrs} -> {b.map_attrs}")
                if a.gap != b.gap:
                    diffs.append(f"EXT-X-GAP {'removed' if a.gap else 'added'}")
                if diffs:
                    changed.append(f"{b.uri}: {', '.join(diffs)}")
            if changed:
                add("segment-changed", f"retained segments must not change: {_summary(changed)}")
        elif removed < len(psegs):
            structural_ok = False
            add("media-sequence-mismatch",
                f"all {len(psegs)} segment(s) of the previous version are gone but EXT-X-MEDIA-SEQUENCE "
                f"advanced by only {removed} ({ms_p} -> {ms_c})")

        if structural_ok:
            self._check_disc_sequence(prev, cur, removed, findings)
        # After a version that listed nothing (a new playlist that ended empty), its next segment's number
        # is where it starts: numbers skipped there are no segments removed.
        if removed and psegs and not cur.endlist and cur.target is not None:
            total = sum((s.duration for s in csegs), Decimal(0))
            if total < 3 * cur.target:
                add("window-too-short",
                    f"{removed} segment(s) removed leaving {total}s, less than 3 target durations "
                    f"({3 * cur.target}s), without EXT-X-ENDLIST")
        if self.allow_playlist_type and removed and "EVENT" in (prev.playlist_type, cur.playlist_type):
            add("event-segments-removed",
                f"an EVENT playlist must not remove segments, but {removed} were removed ({ms_p} -> {ms_c})")

    @staticmethod
    def _check_disc_sequence(prev: _Parsed, cur: _Parsed, removed: int, findings: _Findings) -> None:
        gone = prev.segments[:removed]
        with_disc = [s.uri for s in gone if s.discontinuity]
        low = prev.disc_sequence + len(with_disc)
        # Segments removed that this checker never saw (a polling gap) may each have carried one.
        high = low + max(0, removed - len(prev.segments))
        if not low <= cur.disc_sequence <= high:
            expected = str(low) if low == high else f"between {low} and {high}"
            what = f" ({_summary(with_disc)})" if with_disc else ""
            findings.add("discontinuity-sequence-mismatch",
                         f"EXT-X-DISCONTINUITY-SEQUENCE is {cur.disc_sequence} but {len(with_disc)} removed "
                         f"segment(s) carried EXT-X-DISCONTINUITY{what}, so it must be {expected} "
                         f"(previous version: {prev.disc_sequence})")

    def _check_history(self, cur: _Parsed, findings: _Findings) -> None:
        renumbered: list[str] = []
        moved: list[str] = []
        first_msn: dict[str, int] = {}
        for s in cur.segments:
            old_uri = self._msn_to_uri.get(s.msn)
            if old_uri is not None and old_uri != s.uri:
                renumbered.append(f"{s.msn}: {old_uri} -> {s.uri}")
            seen = first_msn.get(s.uri)
            if seen is not None:
                moved.append(f"{s.uri}: listed as both {seen} and {s.msn} in this version")
                continue
            first_msn[s.uri] = s.msn
            old_msn = self._uri_to_msn.get(s.uri)
            if old_msn is not None and old_msn != s.msn:
                moved.append(f"{s.uri}: {old_msn} -> {s.msn}")
        if renumbered:
            findings.add("msn-uri-changed",
                         f"{len(renumbered)} media sequence number(s) now map to a different URI: "
                         f"{_summary(renumbered)}")
        if moved:
            findings.add("uri-msn-changed",
                         f"{len(moved)} URI(s) now listed under a different media sequence number: "
                         f"{_summary(moved)}")
        for s in cur.segments:
            self._msn_to_uri[s.msn] = s.uri
        self._uri_to_msn.update(first_msn)

    def _check_resume(self, cur: _Parsed, findings: _Findings) -> None:
        if self._resume_msn is not None and self.allow_resume_after_endlist:
            i = self._resume_msn - cur.media_sequence
            if i < 0:
                self._resume_msn = None  # the first resumed segment slid out unseen
            elif i < len(cur.segments):
                s = cur.segments[i]
                if not s.discontinuity:
                    findings.add("resume-without-discontinuity",
                                 f"{s.uri} (media sequence {s.msn}) is the first segment after EXT-X-ENDLIST "
                                 f"and must carry EXT-X-DISCONTINUITY")
                self._resume_msn = None
        if cur.endlist:
            self._resume_msn = cur.end


# ---------------------------------------------------------------------------------------------- variant set


class VariantSetChecker:
    """Checks the media playlists of all variants of one stream, each on its own and against each other."""

    def __init__(self, *, allow_resume_after_endlist: bool = False, allow_playlist_type: bool = False,
                 allow_restart: bool = False, align_by: str = "msn") -> None:
        self.allow_resume_after_endlist = allow_resume_after_endlist
        self.allow_playlist_type = allow_playlist_type
        self.allow_restart = allow_restart
        # "msn": the same number is the same moment in every variant (variants cut in lockstep).
        # "time": variants cut at different instants (a copied variant) are lined up by their dates:
        # segments that overlap in time must have the same discontinuity number (6.2.4).
        if align_by not in ("msn", "time"):
            raise ValueError(f"align_by must be 'msn' or 'time', not {align_by!r}")
        self.align_by = align_by
        self._spans: dict[str, dict[str, tuple[Decimal, Decimal, int]]] = {}  # variant -> uri -> span
        self._checkers: dict[str, MediaPlaylistChecker] = {}
        self._targets: dict[str, int] = {}
        self._generation: dict[str, int] = {}
        self._uses_pdt: dict[str, bool] = {}
        self._dnum: dict[int, tuple[int, str]] = {}  # msn -> (discontinuity number, variant that set it)
        self._pdt: dict[int, tuple[PdtKey, str, str]] = {}  # msn -> (pdt, text, variant)

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self._checkers)

    def checker(self, variant: str) -> MediaPlaylistChecker:
        """The per-variant checker (created on first use)."""
        c = self._checkers.get(variant)
        if c is None:
            c = self._checkers[variant] = MediaPlaylistChecker(
                allow_resume_after_endlist=self.allow_resume_after_endlist,
                allow_playlist_type=self.allow_playlist_type, name=variant, allow_restart=self.allow_restart)
        return c

    def check(self, variant: str, text: str) -> list[Violation]:
        """Check a new version of ``variant``'s media playlist on its own, over time and across variants."""
        c = self.checker(variant)
        out, cur, trusted = c._check(text)
        prefix = f"[{variant}] version {c.versions}: "
        found = _Findings()
        if cur.target is not None:
            # After a new playlist at the same address under a new target, compare only with variants
            # that changed target as often (a poller reads the variants one after another). Not restarts:
            # a variant's own (back in Owncast's stream, under the same target) left the variants' counts
            # apart for good, and the next new target compared its new playlist with the others' old.
            self._targets[variant] = cur.target
            self._generation[variant] = c.retargets
            others = [f"{v}={t}" for v, t in self._targets.items()
                      if v != variant and t != cur.target and self._generation.get(v) == c.retargets]
            if others:
                found.add("variant-target-duration-mismatch",
                          f"EXT-X-TARGETDURATION is {cur.target} but other variants have {_summary(others)}")
        uses = cur.uses_pdt()
        if cur.segments:  # an empty version (ended) has no segment to carry a date or not
            self._uses_pdt[variant] = uses
        differ = [v for v, u in self._uses_pdt.items() if v != variant and u != uses] if cur.segments else []
        if differ:
            found.add("variant-pdt-mismatch",
                      f"this variant {'carries' if uses else 'carries no'} EXT-X-PROGRAM-DATE-TIME but "
                      f"{_summary(differ)} {'does not' if uses else 'does'}")
        if trusted and self.align_by == "time":
            self._check_by_time(variant, cur, found)
        elif trusted:
            dmis: list[str] = []
            pmis: list[str] = []
            for s in cur.segments:
                d = self._dnum.setdefault(s.msn, (s.dnum, variant))
                if d[1] != variant and d[0] != s.dnum:
                    dmis.append(f"media sequence {s.msn}: {s.dnum} here, {d[0]} in {d[1]}")
                if s.pdt_text is not None:
                    pd = self._pdt.setdefault(s.msn, (s.pdt, s.pdt_text, variant))
                    if pd[2] != variant and pd[0] != s.pdt:
                        pmis.append(f"media sequence {s.msn}: {s.pdt_text} here, {pd[1]} in {pd[2]}")
            if dmis:
                found.add("variant-discontinuity-mismatch",
                          f"segments with the same media sequence number must have the same discontinuity "
                          f"number in every variant: {_summary(dmis)}")
            if pmis:
                found.add("variant-pdt-mismatch",
                          f"segments with the same media sequence number have different "
                          f"EXT-X-PROGRAM-DATE-TIME across variants: {_summary(pmis)}")
        return out + [Violation(rule, prefix + msg) for rule, msg in found]

    def _check_by_time(self, variant: str, cur: _Parsed, found: _Findings) -> None:
        mine = self._spans.setdefault(variant, {})
        dmis: list[str] = []
        for s in cur.segments:
            if not isinstance(s.pdt, Decimal) or s.uri in mine:
                continue
            start = s.pdt
            span = (start, start + s.duration, s.dnum)
            mine[s.uri] = span
            for other, spans in self._spans.items():
                if other == variant:
                    continue
                for uri, (a, b, dnum) in spans.items():
                    overlap = min(b, span[1]) - max(a, span[0])
                    if overlap > Decimal("0.25") and dnum != s.dnum:
                        dmis.append(f"{s.uri} ({s.dnum}) overlaps {other}'s {uri} ({dnum})")
        if dmis:
            found.add("variant-discontinuity-mismatch",
                      f"segments covering the same moment must have the same discontinuity number in every "
                      f"variant: {_summary(dmis)}")

    def assert_ok(self, variant: str, text: str) -> None:
        _raise(self.check(variant, text))


# ---------------------------------------------------------------------------------------------- multivariant


def _relative(uri: str) -> bool:
    return not uri.startswith("/") and _SCHEME_RE.match(uri) is None


def check_master(text: str, host: str | None = None) -> list[Violation]:
    """Check a multivariant (master) playlist on its own. `host`: variant URIs may also be absolute at
    that host (`https://host/...`, or a network-path reference `//host/...` when the service does not
    know the viewer's scheme), as the service's playlists with content steering name them
    (broadcaster/steering/masters.py says why)."""

    def _ok(uri: str) -> bool:
        return _relative(uri) or (host is not None and uri.startswith(
            (f"//{host}/", f"http://{host}/", f"https://{host}/")))

    lines = [ln.rstrip() for ln in text.split("\n")]
    out: list[Violation] = []
    if not lines or lines[0] != "#EXTM3U":
        out.append(Violation("extm3u-missing", f"the first line must be #EXTM3U, got {lines[0][:60]!r}"))
    independent = 0
    steering: dict[str, str] | None = None  # EXT-X-CONTENT-STEERING's attributes
    offered: dict[str, list[str]] = {}  # pathway -> its variants' attributes but PATHWAY-ID, in order
    expect_uri: str | None = None  # the EXT-X-STREAM-INF line waiting for its URI
    # A damaged first line is reported above; it is parsed like the others unless it holds the header.
    for ln in lines[1:] if "#EXTM3U" in lines[0] else lines:
        if not ln or (ln.startswith("#") and not ln.startswith("#EXT")):
            continue
        if expect_uri is not None:
            if ln.startswith("#"):
                out.append(Violation("stream-inf-uri-missing",
                                     f"{expect_uri!r} must be followed by a URI line, got {ln!r}"))
            elif not _ok(ln):
                out.append(Violation("uri-not-relative", f"variant URI {ln!r} must be relative"))
            expect_uri = None
            if not ln.startswith("#"):
                continue
        if not ln.startswith("#"):
            continue
        name, _, value = ln.partition(":")
        attrs = _attrs(value)
        if name == "#EXT-X-INDEPENDENT-SEGMENTS":
            independent += 1
        elif name == "#EXT-X-CONTENT-STEERING":
            if steering is not None:
                out.append(Violation("steering-repeated", "EXT-X-CONTENT-STEERING appears more than once (4.4.6.6)"))
            steering = attrs
            if not steering.get("SERVER-URI"):
                out.append(Violation("steering-server-uri-missing", f"{ln!r} has no SERVER-URI (4.4.6.6)"))
        elif name == "#EXT-X-STREAM-INF":
            pathway = attrs.get('PATHWAY-ID', ".").strip('"')
            if not re.fullmatch(r"[A-Za-z0-9._-]+", pathway):
                out.append(Violation("pathway-id-invalid", f"PATHWAY-ID {pathway!r} in {ln!r} (7.1)"))
            offered.setdefault(pathway, []).append(re.sub(r',?PATHWAY-ID="[^"]*"', "", value))
            bw = attrs.get("BANDWIDTH")
            if bw is None:
                out.append(Violation("stream-inf-bandwidth-missing", f"{ln!r} has no BANDWIDTH attribute"))
            elif not _INT_RE.fullmatch(bw):
                out.append(Violation("stream-inf-bandwidth-invalid",
                                     f"BANDWIDTH must be a decimal integer, got {bw!r} in {ln!r}"))
            expect_uri = ln
        uri = attrs.get("URI")
        if uri is not None and not _ok(uri):
            out.append(Violation("uri-not-relative", f"URI {uri!r} in {name[1:]} must be relative"))
    if expect_uri is not None:
        out.append(Violation("stream-inf-uri-missing", f"{expect_uri!r} must be followed by a URI line"))
    if steering is not None:
        first = steering.get("PATHWAY-ID", "").strip('"')
        if first and first not in offered:
            out.append(Violation("steering-pathway-unknown", f"PATHWAY-ID {first!r} names no pathway of "
                                 f"{sorted(offered)} (4.4.6.6)"))
        variants = list(offered.values())
        if any(v != variants[0] for v in variants[1:]):
            out.append(Violation("steering-pathways-differ", "every pathway must offer the same variants, "
                                 f"only other URIs (4.4.6.6): {offered}"))
    if independent > 1:
        out.append(Violation("independent-segments-repeated",
                             f"EXT-X-INDEPENDENT-SEGMENTS appears {independent} times"))
    return out
