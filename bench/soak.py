"""Soak: thousands of segments pushed fast through the real service, every playlist version checked.

    python -m bench.soak [--segments 3000] [--interval 0.01] [--min-size 20000] [--max-size 50000]

Run by hand, not a test. The service runs in this process (its real watcher, uploader, publisher and
server) against a real S3 server (SeaweedFS on 127.0.0.1). Owncast's side is emulated the way its ffmpeg
writes: two variants, each segment written in place under its final name, then the variant playlist
rewritten in place (some of those writes stay half-written for a moment, as a reader of Owncast's
folder sees them), a sliding window of 10 with EXT-X-PROGRAM-DATE-TIME, EXTINF 1.0, small bodies, far
faster than real time (one segment every --interval seconds). Owncast is another process, so its file
writes run in a worker thread and do not take the service's event loop.

Real-world events during the run:
- an Owncast restart: HLS_DIR removed and recreated, a new shortid, numbering from 0 (with the default
  --wipe owncast, exactly Owncast's RemoveAll + MkdirAll, so the file system may give the new folder
  the old one's inode number; --wipe new-inode makes sure it does not);
- the broadcaster disconnects (Owncast's offline tail: EXT-X-DISCONTINUITY, offline.ts with EXTINF 8,
  EXT-X-ENDLIST, written through a temp file and a move), then comes back (a new transcoder run);
- now and then a segment deleted before the service could upload it (in one variant; the service
  drops that slot in every variant so they stay aligned, so its sibling copy is an expected loss too);
- the stream ends with the offline tail.
Shortids use Owncast's alphabet (teris-io/shortid, which includes '-' and '_'); the runs alternate
between ids with and without those characters. Owncast's once-a-minute cleanup (keep the newest 20) is
emulated, but it only deletes segments the service is done with: in real time a segment stays on disk
for a minute or more, which at this speed would be thousands of segments. Losses to a cleanup race are
what the deliberate deletions stand for.

Checked, in a separate process (so checking takes neither the service's event loop nor this process's
memory): every rendering of every variant, taken in the on_listed hook (service.playlists.media_playlist)
and after each write, fed (identical ones skipped) to one VariantSetChecker; and what clients really get:
a side task polls /live/{v}/playlist.m3u8 (with If-None-Match) and /live/master.m3u8 over HTTP into a
second checker, and HEADs the newest segment of each new version at its public URL.

Reported: segments written and listed, losses (expected: the ones deleted on purpose; unexpected: any
other segment written but never listed), rule violations (the first few printed), VmRSS after warm-up,
every --rss-every segments and at the end, wall time and segments per second, and the listing delay
(from the playlist write that lists a segment to the service listing it) by our own clock and from the
service's histogram. Exit status 0 when every goal is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import multiprocessing
import os
import random
import shutil
import tempfile
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from broadcaster.demo.owncast_files import (
    SHORTID_ALPHABET,
    MasterEntry,
    OwncastFolder,
    wipe,
    write_in_place,
)
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist.rendered import Rendered
from broadcaster.service import Service
from broadcaster.settings import load_settings
from broadcaster.source.owncast import SourceSegment
from broadcaster.source.writes import TS_PACKET
from tests.support.hls_checker import VariantSetChecker, Violation, check_master
from tests.support.stats import pct

VARIANTS = 2
EXTINF = 1.0
OWNCAST_WINDOW = 10  # ffmpeg -hls_list_size
OWNCAST_KEEP = OWNCAST_WINDOW + 10  # Owncast's cleanup keeps the newest SegmentCount+10 per variant
CLEANUP_EVERY = 60  # Owncast cleans up once a minute: every 60 segments of 1 s
MASTER = [MasterEntry(1240800), MasterEntry(440800, "640x360", "avc1.64001e,mp4a.40.2")]
PIECE = 32 * 1024  # bytes per write of the playlists, as Owncast copies a PUT body in
SPLIT_PAUSE = 0.002  # how long a playlist written in two parts stays half-written
SHOWN = 5  # examples printed per kind of problem
MB = 1024 * 1024
FEEDS = ("hook", "http")

SlotKey = tuple[int, int]  # (Owncast run, ffmpeg's segment number)


def vm_rss() -> int:
    """Resident memory of this process in bytes (VmRSS from /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# ---------------------------------------------------------------------------------------------- Owncast


class Owncast:
    """Writes HLS_DIR the way Owncast and its ffmpeg do, as fast as it is told to: a driver of
    broadcaster/demo/owncast_files.py's OwncastFolder (the one copy of the folder's format) that adds
    this scenario's events (split playlist writes, deletions, its shortids and cleanup)."""

    def __init__(self, hls: Path, tmp: Path, rng: random.Random, sizes: tuple[int, int], split: float,
                 wipe: str) -> None:
        self.hls = hls
        self.tmp = tmp  # outside HLS_DIR, same file system: the offline tail is moved into place
        self.rng = rng
        self.sizes = sizes
        self.split = split
        self.wipe = wipe
        self.pool = rng.randbytes(2 * sizes[1])  # every body is a slice of it
        self.run = -1
        self.pdt_base = 0.0
        self._files: OwncastFolder | None = None  # made by the first start_run
        self.on_disk: list[deque[tuple[SlotKey, str]]] = []
        self.master_written = False
        self.files = 0
        self.bytes = 0
        self.playlist_writes = 0
        self.split_writes = 0
        self.cleaned = 0
        self.wipes = 0
        self.inode_reused = 0  # wipes after which HLS_DIR had the same (st_dev, st_ino) as before

    @property
    def folder(self) -> OwncastFolder:
        assert self._files is not None, "start_run() first"
        return self._files

    @property
    def number(self) -> int:  # ffmpeg's number for the next segment
        return self.folder.number

    def new_shortid(self) -> str:
        """A 9-character shortid; odd runs get a '-' and a '_' in it, even runs neither."""
        chars = [self.rng.choice(SHORTID_ALPHABET[:-2]) for _ in range(9)]
        if self.run % 2 == 1:
            chars[2], chars[6] = "-", "_"
        return "".join(chars)

    def start_run(self) -> None:
        """A transcoder start: HLS_DIR removed and recreated, a new shortid, numbering from 0."""
        before = (os.stat(self.hls).st_dev, os.stat(self.hls).st_ino) if self.hls.exists() else None
        self.run += 1
        shortid = self.new_shortid()
        # Owncast: os.RemoveAll, then MkdirAll; "new-inode": the old folder lives on until the new one exists
        aside = self.tmp / "old-hls" if self.wipe == "new-inode" else None
        if self._files is None:
            wipe(self.hls, range(VARIANTS), aside=aside)
            self._files = OwncastFolder(self.hls, range(VARIANTS), shortid=shortid, list_size=OWNCAST_WINDOW,
                                        target=math.ceil(EXTINF), piece=PIECE)
        else:
            self._files.restart(shortid=shortid, aside=aside)
        if before is not None:
            self.wipes += 1
            self.inode_reused += before == (os.stat(self.hls).st_dev, os.stat(self.hls).st_ino)
        self.pdt_base = time.time()
        self.on_disk = [deque() for _ in range(VARIANTS)]
        self.master_written = False

    def _write_copy(self, v: int, name: str, body: memoryview, pdt: float, cut: float | None,
                    delete: bool) -> float:
        # The segment arrives in two pieces under its final name, then the playlist is rewritten in place
        # (split at `cut` of its length, the rest SPLIT_PAUSE later).
        files = self.folder
        path = files.folder(v) / name
        write_in_place(path, body, piece=-(-len(body) // 2) or 1)
        files.lists[v].add(name, EXTINF, pdt)
        size = len(files.playlist_text(v).encode())
        cuts = () if cut is None else (min(max(1, int(cut * size)), size - 1),)
        files.write_playlist(v, cuts=cuts, pause=SPLIT_PAUSE)
        written = time.perf_counter()
        if delete:
            path.unlink()
        return written

    async def write_segment(self, delete_in: int | None) -> list[tuple[int, SlotKey, str, float]]:
        """One segment in every variant (segment, then its playlist); returns (variant, key, name, when
        the playlist listing it was closed). `delete_in`: the variant whose copy is deleted right after
        its playlist names it; that copy is written on the event loop, so the service cannot have read
        it before (deterministic)."""
        files = self.folder
        n = files.number
        files.number += 1
        pdt = self.pdt_base + n * EXTINF
        name = files.name(n)
        out: list[tuple[int, SlotKey, str, float]] = []
        for v in range(VARIANTS):
            # Whole 188-byte MPEG-TS packets, as ffmpeg writes them: the service lists nothing cut inside one.
            size = self.rng.randint(*self.sizes) // TS_PACKET * TS_PACKET
            start = self.rng.randrange(len(self.pool) - size)
            body = memoryview(self.pool)[start:start + size]
            self.files += 1
            self.bytes += size
            self.on_disk[v].append(((self.run, n), name))
            self.playlist_writes += 1
            if v == delete_in:
                written = self._write_copy(v, name, body, pdt, None, True)
            else:
                cut = self.rng.random() if self.rng.random() < self.split else None
                self.split_writes += cut is not None
                written = await asyncio.to_thread(self._write_copy, v, name, body, pdt, cut, False)
            out.append((v, (self.run, n), name, written))
        if not self.master_written:  # ffmpeg writes the master once every variant has a playlist
            files.write_master(MASTER)
            self.master_written = True
        return out

    def offline_tail(self) -> None:
        """The broadcaster disconnected: Owncast's offline tail in every variant (offline.ts, EXTINF 8,
        ENDLIST, through a temporary file and a move)."""
        self.folder.offline(self.pool[: self.sizes[0] // TS_PACKET * TS_PACKET], self.tmp)

    def cleanup(self, done: Callable[[int, SlotKey], bool]) -> None:
        """Owncast's cleanup (keep the newest 20 per variant), limited to segments the service is done with."""
        for v in range(VARIANTS):
            disk = self.on_disk[v]
            while len(disk) > OWNCAST_KEEP and done(v, disk[0][0]):
                _, name = disk.popleft()
                try:
                    (self.hls / str(v) / name).unlink()
                    self.cleaned += 1
                except FileNotFoundError:
                    pass  # deleted on purpose earlier


# ---------------------------------------------------------------------------------------------- accounting


@dataclass(slots=True)
class _Pending:
    key: SlotKey
    name: str
    written: float  # perf_counter when the playlist listing it was closed
    expected_loss: bool


class Ledger:
    """Every segment copy written, until it is listed or known lost. The service lists each variant in
    Owncast's order, so when a copy is listed every copy written before it in that variant is settled:
    one still waiting then will never be listed. State stays as small as the backlog."""

    def __init__(self) -> None:
        self.pending: list[deque[_Pending]] = [deque() for _ in range(VARIANTS)]
        self.written = 0
        self.listed = 0
        self.listed_per = [0] * VARIANTS
        self.lost_expected = 0
        self.lost_unexpected = 0
        self.lost_examples: list[str] = []
        self.odd = 0  # listed but not waiting: unknown, or listed twice
        self.odd_examples: list[str] = []
        self.measuring = False
        self.delays: array[float] = array("d")

    def wrote(self, v: int, key: SlotKey, name: str, written: float, expected_loss: bool) -> None:
        self.written += 1
        self.pending[v].append(_Pending(key, name, written, expected_loss))

    def listed_copy(self, v: int, name: str, now: float) -> None:
        q = self.pending[v]
        if not any(p.name == name for p in q):
            self.odd += 1
            if len(self.odd_examples) < SHOWN:
                self.odd_examples.append(f"variant {v}: {name} listed but not waiting (unknown, or listed twice)")
            return
        while q[0].name != name:
            self._lost(v, q.popleft(), "skipped: a later segment was listed")
        p = q.popleft()
        self.listed += 1
        self.listed_per[v] += 1
        if self.measuring:
            self.delays.append(now - p.written)

    def _lost(self, v: int, p: _Pending, why: str) -> None:
        if p.expected_loss:
            self.lost_expected += 1
            return
        self.lost_unexpected += 1
        if len(self.lost_examples) < SHOWN:
            self.lost_examples.append(f"variant {v}: {p.name} (run {p.key[0]}, number {p.key[1]}): {why}")

    def done(self, v: int, key: SlotKey) -> bool:
        q = self.pending[v]
        return not q or key < q[0].key

    def waiting(self) -> int:
        """Copies still expected to be listed."""
        return sum(1 for q in self.pending for p in q if not p.expected_loss)

    def settle(self) -> None:
        for v, q in enumerate(self.pending):
            while q:
                self._lost(v, q.popleft(), "never listed by the end of the run")


# ---------------------------------------------------------------------------------------------- checking


class Findings:
    """Violations of one feed: counted by rule, the first few kept."""

    def __init__(self) -> None:
        self.by_rule: Counter[str] = Counter()
        self.examples: list[str] = []

    def add(self, violations: list[Violation]) -> None:
        for v in violations:
            self.by_rule[v.rule] += 1
            if len(self.examples) < SHOWN:
                self.examples.append(str(v))

    def merge(self, result: dict[str, Any]) -> None:
        self.by_rule.update(result["by_rule"])
        self.examples += result["examples"][: SHOWN - len(self.examples)]

    @property
    def total(self) -> int:
        return sum(self.by_rule.values())


CheckItem = tuple[str, int, str]  # (feed, variant, playlist text)


def checker_process(inbox: Queue[CheckItem | None], outbox: Queue[dict[str, Any]],
                    done: Synchronized[int]) -> None:
    """One VariantSetChecker per feed, fed in order; the findings go back when the inbox says None."""
    checkers = {feed: VariantSetChecker(allow_resume_after_endlist=True) for feed in FEEDS}
    findings = {feed: Findings() for feed in FEEDS}
    versions: Counter[str] = Counter()
    while (item := inbox.get()) is not None:
        feed, variant, text = item
        findings[feed].add(checkers[feed].check(str(variant), text))
        versions[feed] += 1
        with done.get_lock():
            done.value += 1
    outbox.put({feed: {"versions": versions[feed], "by_rule": dict(findings[feed].by_rule),
                       "examples": findings[feed].examples} for feed in FEEDS})


class Checks:
    """The parent's end of the checker process."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # this process has threads; do not fork it
        self.inbox: Queue[CheckItem | None] = ctx.Queue()
        self.outbox: Queue[dict[str, Any]] = ctx.Queue()
        self.done: Synchronized[int] = ctx.Value("q", 0)
        self.sent = 0
        self.process = ctx.Process(target=checker_process, args=(self.inbox, self.outbox, self.done),
                                   name="soak-checker", daemon=True)
        self.process.start()

    def send(self, feed: str, variant: int, text: str) -> None:
        self.sent += 1
        self.inbox.put((feed, variant, text))

    async def caught_up(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.done.value < self.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def finish(self) -> dict[str, Any]:
        self.inbox.put(None)
        result = self.outbox.get(timeout=300)
        self.process.join(10)
        return result

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class HookFeed:
    """Renderings taken inside the service (on_listed and after each write), identical ones skipped."""

    def __init__(self, checks: Checks) -> None:
        self.checks = checks
        self.last: dict[int, str] = {}

    def offer(self, v: int, rendered: Rendered | None) -> None:
        if rendered is not None and self.last.get(v) != rendered.etag:
            self.last[v] = rendered.etag
            self.checks.send("hook", v, rendered.body.decode())

    @staticmethod
    def ended(rendered: Rendered | None) -> bool:
        return rendered is not None and rendered.body.endswith(b"#EXT-X-ENDLIST\n")


class HttpPoller:
    """What clients really get: each variant playlist polled with If-None-Match, the master now and
    then, and the newest segment of each new version fetched (HEAD) from its public URL."""

    def __init__(self, url: str, interval: float, checks: Checks) -> None:
        self.url = url
        self.interval = interval
        self.checks = checks
        self.findings = Findings()  # HTTP-level problems; the playlists' own go to the checker process
        self.requests = 0
        self.not_modified = 0
        self.versions = 0
        self.masters = 0
        self.heads = 0
        self.stop = asyncio.Event()
        self._etag: dict[int, str] = {}
        self._text: dict[int, str] = {}
        self._served: set[int] = set()

    def _fail(self, rule: str, message: str) -> None:
        self.findings.add([Violation(rule, message)])

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            last_master = 0.0
            while True:
                final = self.stop.is_set()  # one more full round after the stop, then out
                for v in range(VARIANTS):
                    await self._poll(http, v)
                if time.monotonic() - last_master > 1.0 or final:
                    last_master = time.monotonic()
                    await self._master(http)
                if final:
                    return
                try:
                    await asyncio.wait_for(self.stop.wait(), self.interval)
                except TimeoutError:
                    pass

    async def _poll(self, http: aiohttp.ClientSession, v: int) -> None:
        headers = {"If-None-Match": self._etag[v]} if v in self._etag else {}
        self.requests += 1
        async with http.get(f"{self.url}/live/{v}/playlist.m3u8", headers=headers) as r:
            status, ctype, etag = r.status, r.headers.get("Content-Type", ""), r.headers.get("ETag")
            body = await r.text()
        if status == 304:
            self.not_modified += 1
            return
        if status != 200:
            if v in self._served:
                self._fail("http-status", f"[{v}] GET playlist answered {status} after it had served 200")
            elif status not in (503, 404):  # before the first listing: not ready (503) / unknown (404)
                self._fail("http-status", f"[{v}] GET playlist answered {status}")
            return
        self._served.add(v)
        if ctype != "application/vnd.apple.mpegurl":
            self._fail("http-content-type", f"[{v}] playlist served as {ctype!r}")
        if etag:
            self._etag[v] = etag
        if body == self._text.get(v):
            return
        self._text[v] = body
        self.versions += 1
        self.checks.send("http", v, body)
        uris = [ln for ln in body.split("\n") if ln and not ln.startswith("#")]
        if uris:
            self.heads += 1
            async with http.head(uris[-1]) as h:
                if h.status != 200:
                    self._fail("segment-not-downloadable", f"[{v}] listed {uris[-1]} answers {h.status}")

    async def _master(self, http: aiohttp.ClientSession) -> None:
        async with http.get(f"{self.url}/live/master.m3u8") as r:
            status, body = r.status, await r.text()
        if status == 200:
            self.masters += 1
            # With content steering (on by default) the variants are named by the host asked (//host/...).
            self.findings.add(check_master(body, host=urlsplit(self.url).netloc))
        elif status != 503:
            self._fail("http-status", f"GET master answered {status}")


# ---------------------------------------------------------------------------------------------- the run


class LogTally(logging.Handler):
    """Counts the service's warnings (by message) and errors for the summary."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.warnings: Counter[str] = Counter()
        self.errors: list[str] = []
        self.error_count = 0
        self.rearmed = 0  # the watcher noticed HLS_DIR was replaced

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.error_count += 1
            if len(self.errors) < SHOWN:
                self.errors.append(f"{record.name}: {record.getMessage()}")
        elif record.levelno >= logging.WARNING:
            self.warnings[str(record.msg)] += 1
        elif "was replaced; watching the new folder" in str(record.msg):
            self.rearmed += 1


def histogram_quantiles(service: Service, before: dict[float, float]) -> tuple[dict[float, float], float, float]:
    """Cumulative bucket counts of the listing-delay histogram now, and p50/p95 of what was observed since
    `before`, interpolated inside buckets like Prometheus' histogram_quantile."""
    now: dict[float, float] = {}
    for metric in service.metrics.listing_delay.collect():
        for s in metric.samples:
            if s.name.endswith("_bucket"):
                now[float(s.labels["le"])] = s.value
    bounds = sorted(now)
    counts = [now[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0

    def q(p: float) -> float:
        if total <= 0:
            return math.nan
        rank = p * total
        lo_bound, lo_count = 0.0, 0.0
        for b, c in zip(bounds, counts):
            if c >= rank:
                if math.isinf(b):
                    return lo_bound
                return lo_bound + (b - lo_bound) * (rank - lo_count) / max(c - lo_count, 1e-12)
            lo_bound, lo_count = b, c
        return lo_bound

    return now, q(0.50), q(0.95)


def lost_by_reason(service: Service) -> Counter[str]:
    out: Counter[str] = Counter()
    for metric in service.metrics.segments_lost.collect():
        for s in metric.samples:
            if s.name.endswith("_total"):
                out[s.labels["reason"]] += int(s.value)
    return out


def plan(args: argparse.Namespace) -> dict[int, list[str]]:
    """Step index -> events before that step's segment. Steps count from 0, warm-up included."""
    n, w = args.segments, args.warmup
    events: dict[int, list[str]] = {}
    restart, offline = w + int(0.3 * n), w + int(0.6 * n)
    events.setdefault(restart, []).append("restart")
    events.setdefault(offline, []).append("offline")
    busy = {restart, offline}
    for k in range(args.deletions):
        step = w + int(n * (k + 0.5) / args.deletions)
        while any(abs(step - b) < 5 for b in busy):
            step += 5
        if step < w + n - 20:
            busy.add(step)
            events.setdefault(step, []).append(f"delete:{k % VARIANTS}")
    return events


async def main(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    hls, tmp = work / "hls", work / "tmp"
    tmp.mkdir()
    rng = random.Random(args.seed)
    owncast = Owncast(hls, tmp, rng, (args.min_size, args.max_size), args.split_writes, args.wipe)
    owncast.start_run()
    ledger = Ledger()
    checks = Checks()
    hook = HookFeed(checks)
    tally = LogTally()
    blog = logging.getLogger("broadcaster")
    blog.setLevel(logging.INFO)
    file_handler = logging.FileHandler(work / "service.log")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    blog.addHandler(file_handler)
    blog.addHandler(tally)
    events = plan(args)
    load_before = os.getloadavg()[0]
    counts: Counter[str] = Counter()
    rss: list[tuple[str, int]] = []
    steps = args.warmup + args.segments

    try:
        async with SeaweedS3(work / "s3", discard=True) as s3:
            settings = load_settings(environ={
                "HLS_DIR": str(hls), "S3_ENDPOINT_URL": s3.endpoint_url, "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_BUCKET_NAME": s3.bucket,
                "R2_PUBLIC_URL": s3.public_url, "PORT": "0", "STATE_DIR": str(work / "state"),
                "WINDOW_SECONDS": str(args.window),
            })
            service: Service

            def on_listed(variant: int, sequence: int, segment: SourceSegment, _url: str) -> None:
                hook.offer(variant, service.playlists.media_playlist(variant))
                ledger.listed_copy(variant, segment.name, time.perf_counter())

            progress: list[float] = [0.0, -1.0]  # [monotonic time of the last change, copies listed then]

            def sample() -> None:
                for v in range(VARIANTS):
                    hook.offer(v, service.playlists.media_playlist(v))

            async def wait_until(done: Callable[[], bool], timeout: float) -> bool:
                deadline = time.monotonic() + timeout
                progress[:] = [time.monotonic(), ledger.listed]
                while not done():
                    if time.monotonic() > deadline:
                        return False
                    sample()
                    await asyncio.sleep(0.005)
                sample()
                return True

            def drained() -> bool:
                """Nothing in flight and every copy listed; or nothing in flight and nothing listed for 3 s
                (a copy the service will never list must not stall the run)."""
                if service.publisher.queue_depth:
                    return False
                if ledger.waiting() == 0:
                    return True
                if ledger.listed != progress[1]:
                    progress[:] = [time.monotonic(), ledger.listed]
                return time.monotonic() - progress[0] > 3.0

            def all_ended() -> bool:
                return all(hook.ended(service.playlists.media_playlist(v)) for v in range(VARIANTS))

            async def measure(label: str) -> None:
                await checks.caught_up()  # nothing of ours waiting in this process's memory
                gc.collect()
                rss.append((label, vm_rss()))

            service = Service(settings, on_listed=on_listed)
            await service.start()
            poller = HttpPoller(service.url, args.poll_interval, checks)
            polling = asyncio.create_task(poller.run(), name="soak-poller")
            histogram_before: dict[float, float] = {}
            started = 0.0
            try:
                next_at = time.perf_counter()
                for step in range(steps):
                    if step == args.warmup:
                        await wait_until(drained, 30)
                        await measure("after warm-up")
                        histogram_before, _, _ = histogram_quantiles(service, {})
                        ledger.measuring = True
                        started = time.perf_counter()
                        next_at = started
                    delete_in: int | None = None
                    for event in events.get(step, []):
                        if event in ("restart", "offline"):
                            if event == "offline":
                                owncast.offline_tail()
                                counts["offline tail + comeback"] += 1
                                if not await wait_until(all_ended, 30):
                                    print("warning: the service did not end its playlists within 30 s")
                                await asyncio.sleep(max(0.2, 4 * args.poll_interval))  # clients see ENDLIST
                            else:
                                counts["restart"] += 1
                            # Owncast takes seconds to restart; the service uploads what it has meanwhile.
                            await wait_until(drained, 30)
                            owncast.start_run()
                            next_at = time.perf_counter()
                        elif event.startswith("delete:"):
                            delete_in = int(event.split(":")[1])
                            counts["deleted before upload"] += 1
                    for v, key, name, written in await owncast.write_segment(delete_in):
                        ledger.wrote(v, key, name, written, expected_loss=delete_in is not None)
                    sample()
                    if owncast.number % CLEANUP_EVERY == 0:
                        owncast.cleanup(ledger.done)
                    done = step + 1 - args.warmup
                    if done > 0 and done % args.rss_every == 0 and done != args.segments:
                        await measure(f"{done} segments")
                    # One segment every --interval; a late step catches up at most at twice the pace, never
                    # in a burst (Owncast does not burst, and a burst would outrun its 10-segment window).
                    next_at = max(next_at + args.interval, time.perf_counter() + args.interval / 2)
                    await asyncio.sleep(next_at - time.perf_counter())
                # The stream ends: Owncast's offline tail; everything listed, both playlists ended.
                owncast.offline_tail()
                if not await wait_until(lambda: drained() and all_ended(), 30):
                    print("warning: not everything was listed and ended within 30 s of the end")
                wall = time.perf_counter() - started
                poller.stop.set()
                await polling
                await measure("end")
                _, h50, h95 = histogram_quantiles(service, histogram_before)
                ledger.settle()
                lost_reasons = lost_by_reason(service)
            finally:
                poller.stop.set()
                polling.cancel()
                await asyncio.gather(polling, return_exceptions=True)
                await service.stop()
        checked = checks.finish()
    finally:
        checks.kill()
        blog.removeHandler(file_handler)
        blog.removeHandler(tally)
        file_handler.close()
        if not args.keep:
            for sub in ("hls", "s3", "state", "tmp"):
                shutil.rmtree(work / sub, ignore_errors=True)

    # -- summary
    n = args.segments
    hook_findings, http_findings = Findings(), Findings()
    hook_findings.merge(checked["hook"])
    http_findings.merge(checked["http"])
    http_findings.by_rule.update(poller.findings.by_rule)
    http_findings.examples += poller.findings.examples[: SHOWN - len(http_findings.examples)]
    print(f"soak: {n} segments (+{args.warmup} warm-up) x {VARIANTS} variants, {args.min_size // 1000}-"
          f"{args.max_size // 1000} KB, one every {args.interval * 1000:g} ms, EXTINF {EXTINF}, Owncast window "
          f"{OWNCAST_WINDOW}, service WINDOW_SECONDS={args.window:g}, SeaweedFS on 127.0.0.1, seed {args.seed}")
    print("events: " + ", ".join(f"{c} x {e}" for e, c in counts.items()) + ", stream end (offline tail); "
          f"{owncast.split_writes} of {owncast.playlist_writes} playlist writes left half-written for "
          f"{SPLIT_PAUSE * 1000:g} ms")
    print(f"HLS_DIR wiped {owncast.wipes} times (--wipe {args.wipe}): the new folder had the old inode number "
          f"{owncast.inode_reused} times; the service's watcher said it re-armed {tally.rearmed} times")
    print(f"segments written:          {owncast.files} ({owncast.files // VARIANTS} per variant, "
          f"{owncast.bytes / MB:.1f} MB)")
    print(f"segments listed:           {ledger.listed} ("
          + ", ".join(f"variant {v}: {c}" for v, c in enumerate(ledger.listed_per)) + ")")
    print(f"segments lost, expected:   {ledger.lost_expected} ({counts['deleted before upload']} deleted on "
          f"purpose + their sibling copies, dropped so the variants stay aligned)")
    print(f"segments lost, unexpected: {ledger.lost_unexpected}")
    for line in ledger.lost_examples:
        print(f"    {line}")
    if ledger.odd:
        print(f"listed but never waiting:  {ledger.odd}")
        for line in ledger.odd_examples:
            print(f"    {line}")
    print("service's lost counter:    " + (", ".join(f"{r}={c}" for r, c in sorted(lost_reasons.items())) or "0"))
    violations = hook_findings.total + http_findings.total
    print(f"playlist versions checked: {checked['hook']['versions']} from the hook, {checked['http']['versions']} "
          f"over HTTP ({poller.requests} playlist requests, {poller.not_modified} x 304, {poller.heads} segment "
          f"HEADs, {poller.masters} masters)")
    print(f"rule violations:           {violations} (hook {hook_findings.total}, HTTP {http_findings.total})")
    for name, f in (("hook", hook_findings), ("HTTP", http_findings)):
        if f.total:
            print(f"    {name} by rule: " + ", ".join(f"{r}={c}" for r, c in f.by_rule.most_common()))
            for line in f.examples:
                print(f"    {line[:400]}")
    base = rss[0][1]
    print("resident memory (VmRSS):")
    for i, (label, value) in enumerate(rss):
        delta = f"  ({(value - base) / MB:+.1f} MB)" if i else ""
        print(f"    {label:>16}  {value / MB:7.1f} MB{delta}")
    growth = (rss[-1][1] - base) / MB
    print(f"wall time:                 {wall:.1f} s for {n} segments: {n / wall:.1f} segments/s "
          f"({VARIANTS * n / wall:.1f} files/s, stream time {n * EXTINF / wall:.0f}x real time; load average "
          f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs)")
    d = list(ledger.delays)
    if d:
        print(f"listing delay (ours):      p50 {pct(d, 50) * 1000:.1f} ms, p95 {pct(d, 95) * 1000:.1f} ms, "
              f"p99 {pct(d, 99) * 1000:.1f} ms, max {max(d) * 1000:.1f} ms ({len(d)} copies, from the playlist "
              f"write to on_listed)")
    print(f"listing delay (service):   p50 {h50 * 1000:.1f} ms, p95 {h95 * 1000:.1f} ms (its histogram, "
          f"interpolated within buckets)")
    shown_warnings = "; ".join(f"{c} x {m!r}" for m, c in tally.warnings.most_common(3))
    goals = [
        ("no unexpected loss", ledger.lost_unexpected == 0 and ledger.odd == 0,
         f"{ledger.lost_unexpected} lost, {ledger.odd} listed unexpectedly"),
        ("no rule violation", violations == 0, f"{violations}"),
        ("memory flat, growth under 5 MB", growth < 5.0, f"{growth:+.1f} MB"),
        ("no error in the service log", tally.error_count == 0, f"{tally.error_count}"),
    ]
    met = all(ok for _, ok, _ in goals)
    # The log is what a failed goal is read from; a run that met every goal leaves nothing behind.
    kept = args.keep or not met
    if not kept:
        shutil.rmtree(work, ignore_errors=True)
    print(f"service log:               {sum(tally.warnings.values())} warnings ({shown_warnings}), "
          f"{tally.error_count} errors" + (f" -> {work / 'service.log'}" if kept else
                                           " (its folder deleted: every goal met; --keep keeps it)"))
    for line in tally.errors:
        print(f"    {line[:400]}")
    for goal, ok, figure in goals:
        print(f"goal: {goal}: {'met' if ok else 'NOT met'} ({figure})")
    return 0 if met else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=3000, help="segments per variant, after the warm-up")
    parser.add_argument("--warmup", type=int, default=300, help="segments before the memory baseline")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between segments")
    parser.add_argument("--min-size", type=int, default=20_000, help="smallest segment body, bytes")
    parser.add_argument("--max-size", type=int, default=50_000, help="largest segment body, bytes")
    parser.add_argument("--deletions", type=int, default=6, help="segments deleted before they could be uploaded")
    parser.add_argument("--window", type=float, default=3.0,
                        help="the service's WINDOW_SECONDS (a segment also stays listed that long, so at this "
                             "speed the window holds about window/interval segments)")
    parser.add_argument("--wipe", choices=("owncast", "new-inode"), default="owncast",
                        help="how HLS_DIR is replaced on a restart: as Owncast does (remove, then create: the "
                             "file system may reuse the inode number), or so that the new folder surely "
                             "has a new inode")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between HTTP polls")
    parser.add_argument("--split-writes", type=float, default=0.1,
                        help="share of playlist writes left half-written for a moment")
    parser.add_argument("--rss-every", type=int, default=1000, help="segments between memory samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (HLS_DIR, bucket, state, service.log); without it only "
                             "the service log is kept, and only when a goal is not met")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
