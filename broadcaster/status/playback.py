"""How viewers' playback fares, from the reports their pages send with the heartbeat.

`Hb-Report: <base64>`: a version byte (1), then FIELDS, little-endian unsigned integers of the width each
names, the P2P ones only with P2P on; counts since the page's previous report, NONE where it has no
figure. Any client can send one, so what a report can do is bounded: only a counted page is heard, each
weighs by the time it speaks for, and one holding more than that time allows is refused whole.
"""

from __future__ import annotations

import binascii
import math
import struct
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .audience import STALLED_WINDOW, Audience, Recent

VERSION = 1
# (name, width). Times in ms, sizes in bytes.
FIELDS: tuple[tuple[str, str], ...] = (
    ("startup_ms", "I"),  # navigation to the first frame; sent in every report, taken once per page
    ("watched_ms", "I"),  # playing (the picture moving) since the previous report
    ("stalls", "B"),  # stalls begun since (after the first frame; a seek is not one)
    ("stalled_ms", "I"),
    ("latency_ms", "I"),  # the service's clock minus the shown frame's PROGRAM-DATE-TIME, at live
    ("variant", "B"),  # the variant playing: the number in its playlist's path
    ("switches", "B"),  # variant switches since
    ("frames", "H"),  # video frames since
    ("dropped_frames", "H"),
    ("network_recovered", "B"), ("network_fatal", "B"),  # errors by kind: recovered in place,
    ("media_recovered", "B"), ("media_fatal", "B"),  # or fatal (a new player was made)
    ("other_recovered", "B"), ("other_fatal", "B"),
    ("bucket_segments", "H"), ("bucket_ms", "I"), ("bucket_bytes", "I"),
    # With P2P on only:
    ("peer_segments", "H"), ("peer_ms", "I"), ("peer_bytes", "I"),
    ("uploaded_bytes", "I"), ("verified", "H"), ("rejected", "H"), ("banned", "B"),
)  # fmt: skip
WITHOUT_P2P = 18
_WITH = struct.Struct("<B" + "".join(width for _, width in FIELDS))
_WITHOUT = struct.Struct("<B" + "".join(width for _, width in FIELDS[:WITHOUT_P2P]))
NONE = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF}  # a field's "no figure" (startup, latency, variant)
_NO_P2P = (0,) * (len(FIELDS) - WITHOUT_P2P)
(STARTUP, WATCHED, STALLS, STALLED, LATENCY, VARIANT, SWITCHES, FRAMES, DROPPED, NET_OK, NET_FATAL, MEDIA_OK,
 MEDIA_FATAL, OTHER_OK, OTHER_FATAL, BUCKET_SEGMENTS, BUCKET_MS, BUCKET_BYTES, PEER_SEGMENTS, PEER_MS,
 PEER_BYTES, UPLOADED, VERIFIED, REJECTED, BANNED) = range(len(FIELDS))
STARTUP_CAP = 600_000  # ms: 10 minutes to start
LATENCY_CAP = 3_600_000  # ms: an hour behind live

# What a page could have had in a second, at most (bounds, not estimates), as the whole milliseconds one
# of each needs: a report's counts need the largest product.
MS_PER_STALL = 500  # 2 stalls a second, and as many variant switches
MS_PER_FRAME = 4  # 250 frames decoded a second (a 120 fps stream, twice); dropped ones of those
MS_PER_ERROR = 250  # 4 player errors a second, every kind and outcome together
MS_PER_SEGMENT = 250  # 4 segments loaded a second (bucket and peers), and as many checked from peers
BYTES_PER_MS = 25_000  # 25 MB a second loaded (both sources together), and as much sent to peers: 200 Mbit/s
MAX_DOWNLOAD_MS = 120_000  # one segment's download: hls.js gives up on it then (fragLoadPolicy maxLoadTimeMs)
# The problems the alerts need two addresses for, and their windows (s): the alerts' own.
PROBLEMS = {"stalls": STALLED_WINDOW, "rejections": 600.0, "slow_downloads": 300.0}


def encode(*values: int, p2p: bool = True) -> str:
    """A report of `values` (FIELDS' order, -1: no figure) as the page sends it (tests and benches)."""
    widths = [width for _, width in FIELDS[: len(FIELDS) if p2p else WITHOUT_P2P]]
    packed = [NONE[w] if v < 0 else v for v, w in zip(values, widths, strict=True)]
    return binascii.b2a_base64((_WITH if p2p else _WITHOUT).pack(VERSION, *packed), newline=False).decode()


MAX_VARIANT_LABEL = 15
VARIANT_LABELS = tuple(str(i) for i in range(MAX_VARIANT_LABEL + 1))
UNKNOWN, OTHER = "unknown", "other"
ERROR_KINDS = ("network", "media", "other")
OUTCOMES = ("recovered", "fatal")
SOURCES = ("bucket", "peer")
GAP = 0.5  # of the beat interval: a report sooner than this after the page's last is not taken
BATCH = 256  # reports whose counts are summed at once (and at every scrape)
REFUSALS = ("malformed", "too_soon", "out_of_bounds")  # why a report was not taken
MALFORMED = "malformed report: Hb-Report is base64 of a version 1 report (viewer/playback.js)"

# Histogram bounds (the `le` of each bucket; +Inf last).
STARTUP_BOUNDS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)
LATENCY_BOUNDS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0,
                  90.0, 120.0, 300.0)
DOWNLOAD_BOUNDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
                   30.0)
SHARE_BOUNDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Buckets:
    """A histogram's weighed counts (bucket i: observations <= bounds[i], the last +Inf) and sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0.0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float, weight: float = 1.0) -> None:
        self.counts[bisect_left(self.bounds, value)] += weight
        self.sum += value * weight

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0.0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == math.inf else repr(bound), float(total)))
        return out


@dataclass(slots=True)
class _Variant:
    watched_ms: int = 0
    stalled_ms: int = 0
    stalls: int = 0


@dataclass
class Playback:
    """The reports' aggregates, and the rules that take a report (parse, then take)."""

    audience: Audience
    interval: float  # the page's beat interval (VIEWER_TIMEOUT / 3)
    gap: float = -1.0  # seconds between two reports of a page taken; < 0: GAP of the interval
    # The target duration (s) of the playlists served, None before any: a page's mean download from the
    # bucket above it is a slow download (a problem the alerts count addresses for).
    target_duration: Callable[[], float | None] = lambda: None

    reports: int = 0
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFUSALS, 0))
    variants: dict[str, _Variant] = field(default_factory=dict)
    totals: list[int] = field(default_factory=lambda: [0] * len(FIELDS))  # every field summed (counts read)
    pending: list[list[int]] = field(default_factory=list)  # reports taken, not yet in totals
    startup: Buckets = field(default_factory=lambda: Buckets(STARTUP_BOUNDS))
    latency: Buckets = field(default_factory=lambda: Buckets(LATENCY_BOUNDS))
    download: tuple[Buckets, Buckets] = field(default_factory=lambda: (Buckets(DOWNLOAD_BOUNDS),
                                                                       Buckets(DOWNLOAD_BOUNDS)))
    share: Buckets = field(default_factory=lambda: Buckets(SHARE_BOUNDS))
    problems: dict[str, Recent] = field(default_factory=dict)  # addresses that reported each lately

    def __post_init__(self) -> None:
        if self.gap < 0:
            self.gap = GAP * self.interval
        self.problems = {kind: Recent(window, self.audience.limit) for kind, window in PROBLEMS.items()}

    def parse(self, text: str) -> list[int] | None:
        """The report's values (FIELDS' order, -1: no figure, P2P's 0 when absent), None when malformed."""
        try:
            data = binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            self.refused["malformed"] += 1
            return None
        size = len(data)
        if size == _WITH.size:
            values = list(_WITH.unpack(data))
        elif size == _WITHOUT.size:
            values = list(_WITHOUT.unpack(data))
            values += _NO_P2P
        else:
            values = [0]
        if values[0] != VERSION:
            self.refused["malformed"] += 1
            return None
        del values[0]
        startup, latency = values[STARTUP], values[LATENCY]
        values[STARTUP] = -1 if startup == 0xFFFF_FFFF else startup if startup < STARTUP_CAP else STARTUP_CAP
        values[LATENCY] = -1 if latency == 0xFFFF_FFFF else latency if latency < LATENCY_CAP else LATENCY_CAP
        if values[VARIANT] == 0xFF:
            values[VARIANT] = -1
        return values

    def take(self, viewer_id: str, v: list[int]) -> bool:
        """A parsed report of a page just counted; False when too soon or beyond its time (the page counts
        it again in its next). Kept to a few operations: it runs on every report (bench/heartbeat.py)."""
        # The seconds its counts need: one builtin max over whole numbers, 5 times cheaper than a loop.
        needs = max(v[STALLS] * MS_PER_STALL, v[SWITCHES] * MS_PER_STALL, v[FRAMES] * MS_PER_FRAME,
                    (v[NET_OK] + v[NET_FATAL] + v[MEDIA_OK] + v[MEDIA_FATAL] + v[OTHER_OK] + v[OTHER_FATAL])
                    * MS_PER_ERROR,
                    (v[BUCKET_SEGMENTS] + v[PEER_SEGMENTS]) * MS_PER_SEGMENT,
                    (v[VERIFIED] + v[REJECTED]) * MS_PER_SEGMENT,
                    (v[BUCKET_BYTES] + v[PEER_BYTES]) // BYTES_PER_MS, v[UPLOADED] // BYTES_PER_MS) / 1000
        if (v[BANNED] > v[REJECTED] or v[DROPPED] > v[FRAMES]
                or v[BUCKET_MS] > MAX_DOWNLOAD_MS * v[BUCKET_SEGMENTS]
                or v[PEER_MS] > MAX_DOWNLOAD_MS * v[PEER_SEGMENTS]):
            needs = math.inf
        window = self.audience.may_report(viewer_id, self.gap, v[STARTUP] >= 0, needs)
        if isinstance(window, str):
            self.refused[window] += 1
            return False
        elapsed, startup = window
        self.reports += 1
        weight = elapsed / self.interval if elapsed < self.interval else 1.0
        most = int(1100 * elapsed)  # the time spoken for, a tenth more (the page times it, we its beats)
        watched = v[WATCHED]
        stalled = v[STALLED]
        if watched + stalled > most:
            watched = min(watched, most)
            stalled = most - watched
        index = v[VARIANT]
        label = (VARIANT_LABELS[index] if 0 <= index <= MAX_VARIANT_LABEL
                 else UNKNOWN if index < 0 else OTHER)
        variant = self.variants.get(label)
        if variant is None:
            variant = self.variants[label] = _Variant()
        variant.watched_ms += watched
        variant.stalled_ms += stalled
        variant.stalls += v[STALLS]
        if v[STALLS] or stalled:
            self.audience.stalled(viewer_id)
            self._problem("stalls", viewer_id)
        if v[REJECTED]:
            self._problem("rejections", viewer_id)
        pending = self.pending
        pending.append(v)  # the counting fields (SWITCHES on) are summed in batches: see count()
        if len(pending) >= BATCH:
            self._sum()
        if startup:
            self.startup.observe(v[STARTUP] / 1000)
        if v[LATENCY] >= 0:
            self.latency.observe(v[LATENCY] / 1000, weight)
        if v[BUCKET_SEGMENTS]:  # the mean download per segment, by source
            mean = v[BUCKET_MS] / v[BUCKET_SEGMENTS] / 1000
            self.download[0].observe(mean, weight)
            if mean > 1 and mean > (self.target_duration() or math.inf):  # no target is shorter than 1 s
                self._problem("slow_downloads", viewer_id)
        if v[PEER_SEGMENTS]:
            self.download[1].observe(v[PEER_MS] / v[PEER_SEGMENTS] / 1000, weight)
        loaded = v[BUCKET_BYTES] + v[PEER_BYTES]
        if loaded:
            self.share.observe(v[PEER_BYTES] / loaded, weight)
        return True

    def _problem(self, kind: str, viewer_id: str) -> None:
        self.problems[kind].mark(self.audience.address(viewer_id), self.audience.now())

    def problem_addresses(self) -> dict[str, int]:
        """Of each problem, the addresses that reported it within its window (PROBLEMS)."""
        now = self.audience.now()
        return {kind: recent.count(now) for kind, recent in self.problems.items()}

    def count(self, index: int) -> int:
        if self.pending:
            self._sum()
        return self.totals[index]

    def _sum(self) -> None:
        self.totals = list(map(sum, zip(self.totals, *self.pending, strict=True)))
        self.pending.clear()
