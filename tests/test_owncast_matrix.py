"""The Owncast settings matrix: latency levels, variants and passthrough, on real ffmpeg.

Each test is a chain of streams (`Row(level, variants)`) written by the Owncast emulator and watched by
one real service process uploading to SeaweedFS; between two streams the settings change as an operator
changes them on Owncast's admin page. For every row:
1. Every version of every media playlist served is checked with VariantSetChecker (allow_restart; aligned
   by PROGRAM-DATE-TIME in passthrough rows); transcoded rows' target is the level's segment length; the
   multivariant playlist names exactly the row's variants.
2. Every segment Owncast listed is listed by the service in that variant and answers 200 from the bucket
   with exactly the bytes Owncast finished writing (the emulator's ledger, not a read of the folder that
   could catch a file being written). Passthrough rows hold each segment's last fifth until its playlist
   is written (LateTails). Nothing else is listed; every playlist ends with EXT-X-ENDLIST, and the next
   stream starts once the wall clock passed the last PROGRAM-DATE-TIME (a real-time broadcaster cannot
   reconnect sooner).
3. Listing latency (Owncast's playlist to the service's, both looked at every POLL) within a generous
   bound (see report()); a segment late while the service logged the bucket unreachable is excused.

By hand, the passthrough chains N times in a row (--passthrough-late-tails holds every tail):
    python -m pytest tests/test_owncast_matrix.py --passthrough-runs 20 -k again -rA
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest

from broadcaster.demo.emulator import LATENCY_LEVELS, LateTails, Ledger, OwncastEmulator, Variant
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist import hls
from tests.support.first_listed import FirstListed
from tests.support.hls_checker import VariantSetChecker, check_master
from tests.support.listing import Listed, listing
from tests.support.scrape import Samples, scraped, total
from tests.support.service_process import ServiceProcess, service_env
from tests.support.waiting import until

pytestmark = [pytest.mark.integration]

POLL = 0.1  # seconds between two looks at Owncast's files and the service's playlists
MIN_SEGMENTS = 3  # each variant of a row lists at least this many segments before the stream stops
MIN_SECONDS = 4.0  # and the stream has been on at least this long
SLACK = 3.0  # the latency bound: 2 x the segment's length + SLACK seconds, and at least LOADED
LOADED = 12.5  # the bound is for a segment the service held back, not for a starved machine
START_TIMEOUT = 60.0  # seconds the service may take to start

# Small pictures: ffmpeg encodes every transcoded variant in real time, next to the rest of the suite.
SMALL = Variant(256, 144, 300)
SMALLER = Variant(192, 108, 200)
SMALLEST = Variant(128, 72, 100)
# The broadcaster's own stream, copied by Owncast ("Source" on its admin page), audio too.
SOURCE = Variant(320, 180, 600, passthrough=True, audio_passthrough=True)

@dataclass(frozen=True)
class Row:
    """One stream of a chain: Owncast's latency level and output variants for it."""

    level: int
    variants: tuple[Variant, ...]
    # Seconds between the broadcaster's keyframes, cycled (passthrough); None keeps the chain's last.
    keyframes: tuple[float, ...] | None = None

    @property
    def seconds(self) -> int:
        return LATENCY_LEVELS[self.level][0]

    @property
    def passthrough(self) -> bool:
        return any(v.passthrough for v in self.variants)

    def __str__(self) -> str:
        kinds = ["copied" if v.passthrough else f"{v.height}p" for v in self.variants]
        return f"level {self.level}, {len(self.variants)} variant(s) ({', '.join(kinds)})"


@dataclass
class Segment:
    """One segment Owncast listed, and what became of it at the service."""

    row: int
    variant: int
    name: str
    stream: str  # Owncast's shortid for the stream
    number: int  # ffmpeg's running number in its stream
    duration: float = 0.0
    owncast_at: float | None = None  # monotonic: first seen in Owncast's playlist
    service_at: float | None = None  # monotonic: first seen in the service's playlist
    url: str = ""  # where first listed, fetched then and compared with Owncast's finished file (Matrix.first)

    @property
    def latency(self) -> float:
        assert self.owncast_at is not None and self.service_at is not None
        # Looked at in turn: the service may show it before the next look at Owncast's file does.
        return max(0.0, self.service_at - self.owncast_at)


_NAME = re.compile(r"^stream-(.+)-(\d+)\.ts$")  # Owncast's stream-<shortid>-<n>.ts


def owncast_entries(text: str) -> list[Listed]:
    """Each stream segment in Owncast's variant playlist, complete lines only, the offline clip left out."""
    if not text.startswith("#EXTM3U\n"):
        return []
    return [e for e in listing(text[:text.rfind("\n") + 1]) if not e.uri.startswith("offline")]


@dataclass
class Matrix:
    """Looks at Owncast's files and the service's playlists side by side, for a chain of rows."""

    owncast: OwncastEmulator
    url: str
    http: aiohttp.ClientSession
    first: FirstListed
    checker: VariantSetChecker = field(
        default_factory=lambda: VariantSetChecker(allow_resume_after_endlist=True, allow_restart=True))
    rows: list[Row] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)  # Owncast's shortid -> row
    segments: dict[tuple[int, str], Segment] = field(default_factory=dict)  # (variant, name) -> segment
    ended: dict[int, int] = field(default_factory=dict)  # variant -> row its ENDLIST closed (latest version)
    versions: dict[int, int] = field(default_factory=dict)  # row -> new versions checked while it was on
    targets: dict[int, set[int]] = field(default_factory=dict)  # row -> targets of versions listing it
    unknown: list[str] = field(default_factory=list)  # listed by the service, never by Owncast
    texts: dict[int, str] = field(default_factory=dict)  # variant -> the service's latest version
    owncast_texts: dict[int, str] = field(default_factory=dict)  # variant -> Owncast's, as last read
    watcher: asyncio.Task[None] | None = None
    service_log: list[str] = field(default_factory=list)  # the service's lines, as it writes them
    floor: int = 0  # the service's TARGET_DURATION: the least target duration it serves
    excused: dict[int, list[str]] = field(default_factory=dict)  # row -> late while the bucket was down
    late_tails: bool = True  # passthrough rows hold each segment's tail until its playlist names it

    async def watch(self) -> None:
        """Until cancelled: Owncast's and the service's playlists every POLL s; each variant `follow`ed."""
        followers: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                for v in range(max((len(r.variants) for r in self.rows), default=0)):
                    if v not in followers:
                        followers[v] = asyncio.create_task(self.follow(v))
                for task in followers.values():
                    if task.done():
                        await task  # raises what it raised
                self.note_owncast()
                await self.poll_service()
                await asyncio.sleep(POLL)
        finally:
            for task in followers.values():
                task.cancel()
            await asyncio.gather(*followers.values(), return_exceptions=True)

    async def follow(self, v: int) -> None:
        """Until cancelled: `v`'s playlist by blocking reload, so that a brief version is seen too."""
        url = self.playlist_url(v)
        msn: int | None = None
        while True:
            async with self.http.get(url if msn is None else f"{url}?_HLS_msn={msn}") as r:
                text = await r.text() if r.status == 200 else None
            if text is not None:
                self.note_listed(v, text, time.monotonic())  # a name of no stream on: poll_service's to tell
            found = re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)$", text or "", re.MULTILINE)
            if text is None or found is None or "#EXT-X-ENDLIST" in text or "CAN-BLOCK-RELOAD=YES" not in text:
                msn = None  # not listing (yet), ended, or not blocking: looked at again after POLL
                await asyncio.sleep(POLL)
                continue
            msn = int(found.group(1)) + sum(1 for line in text.splitlines() if line and not line.startswith("#"))

    def playlist_url(self, v: int) -> str:
        return f"{self.url}/live/{v}/playlist.m3u8"

    def note_listed(self, v: int, text: str, now: float) -> tuple[list[Segment], list[str]]:
        """The segments of started streams a version lists (first sight noted, fetched), and unknown names."""
        out, unknown = [], []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name = line.rsplit("/", 1)[1]
            seg = self.segment(v, name)
            if seg is None:
                unknown.append(name)
                continue
            out.append(seg)
            if seg.service_at is None:
                seg.service_at, seg.url = now, urljoin(self.playlist_url(v), line)
                self.first.note(seg.url, self.owncast.variant_dir(v) / name, now)
        return out, unknown

    def note_owncast(self) -> None:
        """Owncast's variant playlists of the stream on, as its files are now."""
        if not self.rows:
            return
        now = time.monotonic()
        for v in range(len(self.rows[-1].variants)):
            try:
                text = self.owncast.variant_playlist(v).read_text()
            except FileNotFoundError:
                continue
            self.owncast_texts[v] = text
            for entry in owncast_entries(text):
                assert _NAME.match(entry.uri), f"Owncast listed {entry.uri!r} in variant {v}"
                seg = self.segment(v, entry.uri)
                if seg is None or seg.owncast_at is not None:
                    continue  # None: a stream start() has not returned from yet, the next look takes it
                assert seg.row == len(self.rows) - 1, f"{seg.name} is not from the stream on ({self.runs})"
                seg.duration, seg.owncast_at = entry.duration, now

    def segment(self, v: int, name: str) -> Segment | None:
        """Variant `v`'s segment `name`, noted at its first sight; None if it is of no stream started."""
        m = _NAME.match(name)
        if (v, name) not in self.segments and m is not None and m.group(1) in self.runs:
            self.segments[(v, name)] = Segment(self.runs[m.group(1)], v, name, m.group(1), int(m.group(2)))
        return self.segments.get((v, name))

    async def read_service(self) -> dict[int, str]:
        """Every variant's media playlist as served now (a removed variant keeps its last one)."""
        texts: dict[int, str] = {}
        for v in range(max(len(r.variants) for r in self.rows)):
            async with self.http.get(self.playlist_url(v)) as r:
                if r.status in (503, 404):
                    continue  # nothing listed yet (404: a variant no stream has had yet)
                assert r.status == 200, (v, r.status, await r.text())
                assert r.headers["Content-Type"] == "application/vnd.apple.mpegurl"
                texts[v] = await r.text()
        return texts

    async def poll_service(self) -> None:
        """One look at every variant, read again until nothing changed in between, then checked."""
        if not self.rows:
            return
        seen_at = time.monotonic()
        look = await self.read_service()
        for _ in range(3):
            again_at = time.monotonic()
            again = await self.read_service()
            if again == look:
                break
            seen_at, look = again_at, again
        for v, text in sorted(look.items()):
            self.note_service(v, text, seen_at)

    def note_service(self, v: int, text: str, now: float) -> None:
        if self.texts.get(v) == text:
            return
        row = len(self.rows) - 1
        try:
            self.checker.assert_ok(str(v), text)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.dump(v, text)}") from None
        self.texts[v] = text
        self.versions[row] = self.versions.get(row, 0) + 1
        lines = text.splitlines()
        target = int(next(ln for ln in lines if ln.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
        segments, unknown = self.note_listed(v, text, now)
        self.unknown += [f"{v}/{name}" for name in unknown]
        listed_rows = [seg.row for seg in segments]
        for listed in set(listed_rows):
            self.targets.setdefault(listed, set()).add(target)
        if "#EXT-X-ENDLIST" in lines and listed_rows:
            self.ended[v] = listed_rows[-1]
        else:
            self.ended.pop(v, None)

    def dump(self, v: int, text: str) -> str:
        """What the service and Owncast listed last, for a failure's message."""
        parts = [f"--- service, variant {v}, the version refused:\n{text}"]
        parts += [f"--- service, variant {i}, last good version:\n{t}" for i, t in sorted(self.texts.items())]
        parts += [f"--- Owncast, variant {i}:\n{t}" for i, t in sorted(self.owncast_texts.items())]
        return "\n".join(parts)

    def of_row(self, row: int) -> list[Segment]:
        return [s for s in self.segments.values() if s.row == row and s.owncast_at is not None]

    async def until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for a condition while watch() runs; a failed look or fetch fails at once."""
        async def met() -> bool:
            if self.watcher is not None and self.watcher.done():
                await self.watcher  # raises what it raised
            assert not self.first.wrong, "\n".join(self.first.problems())
            return condition()

        await until(met, what, timeout, every=POLL)

    async def play(self, row: Row) -> str:
        """One stream until every variant listed a few segments, all of it listed and ended: report()'s."""
        index = len(self.rows)
        self.checker.align_by = "time" if row.passthrough else "msn"
        self.owncast.configure(variants=row.variants, latency_level=row.level, source_keyframes=row.keyframes)
        self.owncast.late_tails = LateTails() if row.passthrough and self.late_tails else None
        await self.owncast.start()
        self.rows.append(row)
        self.runs[self.owncast.shortid] = index
        started = time.monotonic()
        count = len(row.variants)

        def enough() -> bool:
            listed = [sum(1 for s in self.of_row(index) if s.variant == v) for v in range(count)]
            # and the service lists every variant: only then does it serve the multivariant playlist
            ours = {s.variant for s in self.of_row(index) if s.service_at is not None}
            return (min(listed) >= MIN_SEGMENTS and time.monotonic() - started >= MIN_SECONDS
                    and ours == set(range(count)))

        await self.until(enough, row.seconds * (MIN_SEGMENTS + 3) + 30, f"{row}: segments from Owncast")
        await self.check_master(count)
        await self.owncast.stop_stream()  # the broadcaster leaves: Owncast appends its offline tail

        def all_listed_and_ended() -> bool:
            return all(s.service_at is not None for s in self.of_row(index)) and all(
                self.ended.get(v) == index for v in range(count))

        longest = max(row.seconds, max(s.duration for s in self.of_row(index)))
        try:
            await self.until(all_listed_and_ended, 2 * longest + SLACK + 5, f"{row}: every segment listed")
        except AssertionError as err:
            missing = [f"{s.variant}/{s.name}" for s in self.of_row(index) if s.service_at is None]
            raise AssertionError(f"{row}: {err}; not listed by the service: {missing}; "
                                 f"rows ended by ENDLIST, per variant: {self.ended}") from None
        await self.first.settle()
        altered = [f"{s.variant}/{s.name}: {self.first.wrong[s.url]}" for s in self.of_row(index)
                   if s.url in self.first.wrong]
        assert not altered, (f"{row}: {len(altered)} of {len(self.of_row(index))} segments listed are not "
                             "the file Owncast finished writing:\n" + "\n".join(altered))
        report = self.report(index)
        last = self.last_date()
        await self.until(lambda: time.time() >= last, 15, "the wall clock to pass the stream's last date")
        return report

    def last_date(self) -> float:
        """When the media of the stream that ended ends, by Owncast's own dates."""
        ends = [datetime.strptime(e.date, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() + e.duration
                for text in self.owncast_texts.values() for e in owncast_entries(text)[-1:] if e.date]
        return max(ends, default=0.0)

    async def check_master(self, count: int) -> None:
        async with self.http.get(f"{self.url}/live/master.m3u8") as r:
            assert r.status == 200
            text = await r.text()
        here = self.url.split("://", 1)[1]  # variants on both pathways, named with the host asked
        assert check_master(text, host=here) == []
        uris = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        assert uris == [f"{self.url}/live/{path}{v}/playlist.m3u8" for path in ("", "vm/") for v in range(count)], text

    def report(self, index: int) -> str:
        """Check the row's latencies against the bound and its target duration; sum it up in a line."""
        row = self.rows[index]
        segs = self.of_row(index)
        late: list[str] = []
        # A transcoded segment may wait for the copied variant's segment of its moment: the longest bounds.
        copied = [x.duration for x in segs if row.variants[x.variant].passthrough]
        for s in segs:
            assert s.url in self.first.compared, s  # fetched
            bound = max(2 * max(row.seconds, s.duration, *copied) + SLACK, LOADED)
            two_after = self.segments.get((s.variant, f"stream-{s.stream}-{s.number + 2}.ts"))
            before_two_after = (two_after is not None and two_after.owncast_at is not None
                                and s.service_at is not None and s.service_at <= two_after.owncast_at)
            if s.latency > bound and not before_two_after:
                what = f"{s.variant}/{s.name}: {s.latency:.2f} s (bound {bound:.1f} s)"
                outage = self.bucket_outage(s)
                if outage is None:
                    late.append(what)
                else:
                    self.excused.setdefault(index, []).append(f"{what}; {outage}")
        assert not late, f"{row}: listed more than a couple of segments late: {late}"
        if not row.passthrough:
            assert self.targets.get(index) == {max(self.floor, row.seconds)}, (row, self.targets.get(index))
        counts = "/".join(str(sum(1 for s in segs if s.variant == v)) for v in range(len(row.variants)))
        latencies = [s.latency for s in segs]
        targets = sorted(self.targets.get(index, set()))
        return (f"{str(row):<44} segments {counts:<8} latency p50 {statistics.median(latencies):.2f} s, max "
                f"{max(latencies):.2f} s; {self.versions.get(index, 0)} versions checked, target {targets}, "
                f"{sum(s.url in self.first.compared for s in segs)}/{len(segs)} compared byte for byte"
                + "".join(f"\n    excused from the bound: {e}" for e in self.excused.get(index, [])))

    def bucket_outage(self, seg: Segment) -> str | None:
        """The service's own log line saying the bucket failed while `seg` waited to be listed, if any."""
        assert seg.owncast_at is not None and seg.service_at is not None
        offset = time.time() - time.monotonic()
        for line in self.service_log:
            if "bucket unreachable" not in line and "bucket reachable again" not in line:
                continue
            try:
                logged = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() - offset
            except ValueError:
                continue  # not a log line of its own (a traceback's)
            if seg.owncast_at <= logged <= seg.service_at:
                return line[24:]
        return None


@contextlib.asynccontextmanager
async def chain(tmp_path: Path, s3: SeaweedS3, name: str, final: Samples, late_tails: bool = True,
                **settings: str) -> AsyncIterator[Matrix]:
    """The service on `s3`, the emulator and the looks at both; `final` gets its last metrics."""
    hls_dir = tmp_path / "hls"
    hls_dir.mkdir()
    # Content steering on: every row's playlists on both pathways.
    env = service_env(hls_dir, s3, tmp_path / "state", PATHWAYS="bucket,vm", **settings)
    del env["REWIND_SECONDS"]  # the service's default: five minutes of the stream listed
    ledger = Ledger()
    owncast = OwncastEmulator(hls_dir, ledger=ledger)
    started = time.monotonic()
    try:
        async with (ServiceProcess(env, tmp_path / "service", start_timeout=START_TIMEOUT) as service,
                    aiohttp.ClientSession() as http):
            first = FirstListed(http, ledger, f"{service.url}/live/{hls.VM_FOLDER}/")
            matrix = Matrix(owncast, service.url, http, first, service_log=service.lines,
                            floor=int(settings.get("TARGET_DURATION", "0")), late_tails=late_tails)
            matrix.watcher = asyncio.create_task(matrix.watch())
            try:
                yield matrix
            finally:
                matrix.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await matrix.watcher
                await first.close()
            assert not matrix.unknown, f"listed by the service, never by Owncast: {matrix.unknown}"
            final.update(await scraped(http, service.url))
            assert await service.stop() == 0
            assert service.problems() == [], "\n".join(service.problems())
    finally:
        await owncast.close()
        print(f"\nOwncast matrix, chain {name}: {time.monotonic() - started:.1f} s")


# Keyframes 3, 1, 2 s apart, the longest first: the target is raised once, when found cut apart.
LONGEST_FIRST = (3.0, 1.0, 2.0)

# The chains with the source copied (passthrough), also run again and again by hand (the end of this file).
COPIED = [Row(1, (SMALL, SMALLEST)), Row(1, (SOURCE, SMALLEST))]
COPIED3 = [Row(3, (SMALL, SMALLER, SMALLEST)), Row(0, (SOURCE, SMALL, SMALLEST), LONGEST_FIRST)]
RAISED = [Row(0, (SOURCE, SMALLEST), (2.0, 1.0, 3.5)), Row(0, (SOURCE, SMALLEST), (2.0, 1.0, 3.0))]


async def play_all(matrix: Matrix, rows: list[Row]) -> None:
    for row in rows:
        print("  " + await matrix.play(row))


# (name, rows, the service's settings, counters after the last row as (sample, reason or "") -> value).
CHAINS = [
    pytest.param("levels", [Row(0, (SMALL,)), Row(2, (SMALL,)), Row(4, (SMALL,)), Row(0, (SMALL,))], {},
                 {("target_duration_changes_total", "new_stream"): 3, ("target_duration_seconds", ""): 1},
                 id="latency_levels_with_one_transcoded_variant"),
    # The copied variant is cut at the keyframes: the target is raised once, when found cut apart.
    pytest.param("copied", COPIED, {},
                 {("variants_cut_apart_total", ""): 1,
                  ("target_duration_changes_total", "longer_segment"): 1},
                 id="two_transcoded_variants_then_the_source_copied"),
    pytest.param("copied3", COPIED3, {}, {("variants_cut_apart_total", ""): 1},
                 id="three_transcoded_variants_then_three_with_the_source_copied"),
    pytest.param("variants", [Row(1, (SMALL, SMALLEST)), Row(3, (SMALL, SMALLER, SMALLEST))], {},
                 {("target_duration_changes_total", "new_stream"): 1},
                 id="two_then_three_transcoded_variants"),
    # 1 variant at level 0 -> 1 again (a reconnect: a discontinuity) -> 2 variants at level 0.
    pytest.param("added", [Row(0, (SMALL,)), Row(0, (SMALL,)), Row(0, (SMALL, SMALLEST))], {}, {},
                 id="a_variant_added_after_a_discontinuity"),
    # Removed variants are ended and nothing waits for them (with TARGET_DURATION=10 a wait is 30 s).
    pytest.param("removed", [Row(3, (SMALL, SMALLER, SMALLEST)), Row(0, (SMALL,))], {"TARGET_DURATION": "10"},
                 {}, id="three_then_one_transcoded_variant"),
]


@pytest.mark.parametrize(("name", "rows", "settings", "counted"), CHAINS)
async def test_a_chain(tmp_path: Path, seaweed: SeaweedS3, name: str, rows: list[Row],
                       settings: dict[str, str], counted: dict[tuple[str, str], float]) -> None:
    final: Samples = {}
    async with chain(tmp_path, seaweed, name, final, late_tails=True, **settings) as matrix:
        await play_all(matrix, rows)
    for (sample, reason), value in counted.items():
        labels = {"reason": reason} if reason else {}
        assert total(final, f"hls_broadcaster_{sample}", **labels) == value, (sample, reason)


async def test_passthrough_segment_longer_after_the_cut_raises_the_target_at_one_moment(
        tmp_path: Path, seaweed: SeaweedS3) -> None:
    """The source copied + 1 transcoded at level 0, keyframes 2, 1, 3.5 s apart: copied segments of 2
    (found cut apart: target 1 -> 2), 1, then 3.5 s (target 2 -> 4). Each variant starts its new playlist
    at its own next segment, on the same timeline: one moment keeps one discontinuity number in each."""
    final: Samples = {}
    async with chain(tmp_path, seaweed, "raised", final) as matrix:
        # Then again with a 3 s copied segment: each stream follows an end, so its target starts low again.
        await play_all(matrix, RAISED)
    # Under load a stream may need no raise: every raise seen was counted, every target covers its longest.
    assert total(final, "hls_broadcaster_variants_cut_apart_total") == 2
    seen_raised = sum(len(matrix.targets[index]) - 1 for index in range(len(RAISED)))
    assert total(final, "hls_broadcaster_target_duration_changes_total",
                   reason="longer_segment") >= seen_raised, matrix.targets
    for index, row in enumerate(RAISED):
        assert row.keyframes is not None
        assert max(matrix.targets[index]) >= math.ceil(max(row.keyframes)), (row, matrix.targets)
    assert total(final, "hls_broadcaster_target_duration_seconds") == max(matrix.targets[len(RAISED) - 1])
    # Every segment Owncast listed was listed (play() asserts it); none was counted lost either.
    assert not [k for k, value in final.items() if k[0] == "hls_broadcaster_segments_lost_total" and value]


# -- by hand: the passthrough chains again and again ------------------------------------------------------

PASSTHROUGH_CHAINS = {"copied": COPIED, "copied3": COPIED3, "raised": RAISED}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """--passthrough-runs N: the test below N times (tests/conftest.py leaves it out without it)."""
    if "passthrough_run" in metafunc.fixturenames:
        runs = int(metafunc.config.getoption("--passthrough-runs"))
        metafunc.parametrize("passthrough_run", range(1, runs + 1), ids=lambda n: f"run{n}")


@pytest.mark.timeout(600)  # three chains: about 70 s on a quiet VM
async def test_the_passthrough_chains_again(
        tmp_path: Path, seaweed: SeaweedS3, passthrough_run: int, request: pytest.FixtureRequest) -> None:
    """One run of --passthrough-runs: a chain that fails does not stop the others; each reports."""
    late_tails = bool(request.config.getoption("--passthrough-late-tails"))
    said: list[str] = []
    failed = 0
    for name, rows in PASSTHROUGH_CHAINS.items():
        started = time.monotonic()
        (tmp_path / name).mkdir()
        try:
            async with chain(tmp_path / name, seaweed, f"again-{passthrough_run}-{name}", {},
                             late_tails=late_tails) as matrix:
                await play_all(matrix, rows)
        except AssertionError as err:
            failed += 1
            lines = str(err).splitlines()
            said.append(f"{name}: FAILED, " + "\n    ".join(lines[:8] + [f"({len(lines) - 8} more lines)"] * (
                len(lines) > 8)))
            continue
        segments = [s for s in matrix.segments.values() if s.owncast_at is not None]
        said.append(f"{name}: {len(rows)} streams, {len(segments)} segments listed by Owncast and by the "
                    f"service, {sum(s.url in matrix.first.compared for s in segments)} of them byte for byte "
                    "the finished file "
                    f"({time.monotonic() - started:.0f} s)")
    mode = "every tail held (LateTails)" if late_tails else "the race left to chance"
    outcome = "clean" if not failed else f"{failed} chain(s) failed"
    print(f"\npassthrough run {passthrough_run}, {mode}: {outcome}" + "".join(f"\n  {line}" for line in said))
    assert not failed, "\n".join(said)
