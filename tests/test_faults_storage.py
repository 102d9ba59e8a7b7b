"""R2 is slow or down: the bucket fails under a running stream, with real parts only.

The service's S3_ENDPOINT_URL is a FaultProxy in front of SeaweedFS, R2_PUBLIC_URL SeaweedFS itself; the
emulator writes a real stream. A watcher polls both variant playlists every 150 ms, checks every version,
fetches every segment URL the moment it is first listed (its bytes must be Owncast's finished file), and
remembers when each URL first and last appeared. In the down-then-back tests every segment's last bytes
reach Owncast's disk only after its playlist names it (LateTails), so an upload cut short would show."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest

from broadcaster.demo.emulator import Cleanup, LateTails, Ledger, OwncastEmulator
from broadcaster.demo.ffmpeg import ffmpeg_exe
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist import hls
from tests.support.fault_proxy import FaultProxy, Mode
from tests.support.first_listed import FirstListed
from tests.support.scrape import scraped, total
from tests.support.service_process import ServiceProcess, service_env
from tests.support.listing import listing
from tests.support.observe import Observed, health
from tests.support.owncast_writer import owncast_number
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

VARIANTS = (0, 1)
TARGET = 1  # the emulator's segments last 1 s
WINDOW_SECONDS = 5.0
POLL = 0.15  # seconds between polls of the service
START_TIMEOUT = 60.0  # a deadline for the service to serve: a loaded machine took over 20 s
T = TypeVar("T")


def name(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


# -- watching the service ------------------------------------------------------------------------------


@dataclass
class Watch:
    """`seen` (every version checked, what each variant listed, Owncast's files) kept up to date in the
    background; when each URL was first listed and its bytes (`first`), and last listed. A failure is
    noted in `errors` (the poller cannot raise into the test), told by Rig.check_watch."""

    http: aiohttp.ClientSession
    url: str
    owncast: OwncastEmulator
    first: FirstListed
    seen: Observed = field(default_factory=Observed)
    last_seen: dict[str, float] = field(default_factory=dict)  # URI -> monotonic
    current: dict[int, list[str]] = field(default_factory=lambda: {v: [] for v in VARIANTS})  # non-gap URIs
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: list[str] = field(default_factory=list)
    ready: bool = False

    async def run(self) -> None:
        while True:
            try:
                self.seen.note_owncast(self.owncast)
                await asyncio.gather(*(self.poll_variant(v) for v in VARIANTS), self.poll_master())
            except (aiohttp.ClientError, TimeoutError) as err:
                self.errors.append(f"polling the service failed: {err!r}")
            await asyncio.sleep(POLL)

    async def poll_variant(self, v: int) -> None:
        url = f"{self.url}/live/{v}/playlist.m3u8"
        async with self.http.get(url) as r:
            text = await r.text()
            if self.ready:
                self.statuses[r.status] += 1
                if r.status != 200:
                    self.errors.append(f"variant {v}: playlist answered {r.status} while live")
            if r.status == 200:
                self.note(v, text, url, time.monotonic())

    async def poll_master(self) -> None:
        async with self.http.get(f"{self.url}/live/master.m3u8") as r:
            await r.read()
            if self.ready and r.status != 200:
                self.errors.append(f"the master playlist answered {r.status} while live")

    def note(self, v: int, text: str, url: str, now: float) -> None:
        try:
            self.seen.note_ours(v, text, url)
        except AssertionError as err:  # VariantSetChecker refused the version
            self.errors.append(str(err))
            return
        # A gap's URI holds no media (4.4.4.7): not fetched, not timed.
        self.current[v] = [urljoin(url, e.uri) for e in listing(text) if not e.gap]
        for uri in self.current[v]:
            # The bucket's URL, or, while players are steered to the VM, its VM URI (a path on the service:
            # the VM's copy, or a redirect to the bucket's once it landed; steering/bucket_pathway.py).
            if uri.startswith(self.url) and not uri.startswith(self.first.vm):
                self.errors.append(f"variant {v}: {uri} is on the service but not a VM segment URI")
            self.first.note(uri, self.owncast.variant_dir(v) / name(uri), now)
            self.last_seen[uri] = now

    def listed_numbers(self, v: int) -> set[int]:
        return {owncast_number(u) for u in self.seen.uris(v)}


@dataclass
class Rig:
    service: ServiceProcess
    http: aiohttp.ClientSession
    watch: Watch
    proxy: FaultProxy
    health_log: list[str] = field(default_factory=list)  # each new /health status, in order

    async def health(self) -> tuple[int, dict[str, Any]]:
        status, body = await health(self.http, self.service.url)
        if not self.health_log or self.health_log[-1] != body["status"]:
            self.health_log.append(body["status"])
        return status, body

    async def metric(self, sample: str, **labels: str) -> float:
        """Sum of the samples named `sample` whose labels include `labels`."""
        return total(await scraped(self.http, self.service.url), sample, **labels)

    async def lost(self) -> dict[tuple[str, str], float]:
        """segments_lost_total by (variant, reason)."""
        return {(dict(ls)["variant"], dict(ls)["reason"]): v
                for (n, ls), v in (await scraped(self.http, self.service.url)).items()
                if n == "hls_broadcaster_segments_lost_total"}

    async def until(self, probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
        """Poll `probe` every 150 ms until it returns something truthy; fail fast on a watch error."""
        last: list[object] = [None]

        async def probed() -> T | None:
            self.check_watch()
            last[0] = got = await probe()
            return got

        try:
            found: T | None = await until(probed, what, timeout, every=POLL, detail=lambda: (
                f"last probe {last[0]!r}; proxy {dict(self.proxy.counts)}; service log tail:\n"
                + "\n".join(self.service.lines[-15:])))
        except AssertionError as err:
            status, health = await self.health()
            raise AssertionError(f"{err}\nhealth {status} {health}") from None
        assert found is not None
        return found

    def check_watch(self) -> None:
        errors = self.watch.errors + self.watch.first.problems()
        assert not errors, "\n".join(errors[:20])

    async def settled(self, in_order: bool = True) -> None:
        """Every segment GET done, every version checked, nothing wrong; if `in_order`, in Owncast's order."""
        await self.watch.first.settle()
        self.check_watch()
        for v in VARIANTS if in_order else ():
            self.watch.seen.assert_in_owncast_order(v, span=True)

    async def ready(self, segments: int = 3) -> None:
        async def listed_and_ok() -> bool:
            status, _ = await self.health()
            return status == 200 and min(self.watch.seen.counts().values()) >= segments

        await self.until(listed_and_ok, 30, f"{segments} segments listed per variant and /health ok")
        self.watch.ready = True

    async def health_matching(self, code: int, pattern: str, timeout: float) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            status, health = await self.health()
            return health if status == code and re.search(pattern, health["status"], re.IGNORECASE) else None

        return await self.until(probe, timeout, f"/health {code} with a status matching {pattern!r}")

    def backlog(self) -> dict[int, list[str]]:
        """Per variant: segments Owncast listed that we have not listed yet (still on disk)."""
        tops = {v: max(self.watch.listed_numbers(v)) for v in VARIANTS}
        return {v: [n for n in self.watch.seen.owncast[v] if owncast_number(n) > tops[v]] for v in VARIANTS}

    async def listed_all(self, backlog: dict[int, list[str]]) -> bool:
        listed = {v: {name(u) for u in self.watch.seen.uris(v)} for v in VARIANTS}
        return all(set(backlog[v]) <= listed[v] for v in VARIANTS)


@contextlib.asynccontextmanager
async def running(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, **env: str) -> AsyncIterator[Rig]:
    """The service with its uploads going through a FaultProxy, and a Watch polling it, ready (Rig.ready);
    at the block's end stopped cleanly, with no traceback and no problem in its log."""
    assert owncast.ledger is not None, "the Watch compares the bucket's bytes with the emulator's ledger"
    async with FaultProxy(seaweed.endpoint_url) as proxy:
        settings = service_env(owncast.hls_dir, seaweed, tmp_path / "state", S3_ENDPOINT_URL=proxy.url,
                               WINDOW_SECONDS=str(WINDOW_SECONDS), **env)
        assert settings["R2_PUBLIC_URL"] == seaweed.public_url  # viewers read the bucket directly
        async with (ServiceProcess(settings, tmp_path, start_timeout=START_TIMEOUT) as service,
                    aiohttp.ClientSession() as http):
            first = FirstListed(http, owncast.ledger, f"{service.url}/live/{hls.VM_FOLDER}/")
            watch = Watch(http, service.url, owncast, first)
            poller = asyncio.create_task(watch.run())
            try:
                rig = Rig(service, http, watch, proxy)
                await rig.ready()
                yield rig
                assert await service.stop(signal.SIGTERM) == 0
                log = "\n".join(service.lines)
                assert "Traceback" not in log, log
                assert service.problems() == [], "\n".join(service.problems())
            finally:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
                await first.close()


# -- a + b: the bucket goes down mid-stream, then comes back ---------------------------------------------

def key_tail(url: str) -> str:
    """The variant folder and segment name of a listed URL or a PUT's path (the bucket's prefix aside)."""
    return "/".join(urlsplit(url).path.split("/")[-2:])


# The outage lasts until this many segments per variant wait to be listed (about 7 s of stream): Owncast
# keeps 20, so the whole backlog stays on disk.
BACKLOG = 5
CAUSE = {"down_503": r"storage unreachable \(SlowDown\)",
         "refuse": r"storage unreachable \(\w*Connect\w*Error\)"}


async def outage_told_in_a_few_lines(rig: Rig, before: int, failed: float) -> None:
    """The log through the outage (from line `before`): a few lines an operator can read, not one per
    attempt: one WARNING, summaries only (at most one every 30 s), and one INFO that says it is back and
    counts at least the `failed` attempts seen meanwhile."""
    async def back_in_the_log() -> list[str]:
        return [line for line in rig.service.lines[before:] if "bucket reachable again" in line]

    [back] = await rig.until(back_in_the_log, 10, "the log says the bucket is back")
    during = rig.service.lines[before:]
    warnings = [line for line in during if " WARNING " in line]
    assert len([w for w in warnings if "bucket unreachable (" in w]) == 1, "\n".join(warnings)
    assert all("bucket still unreachable" in w for w in warnings[1:]), "\n".join(warnings)
    assert " INFO " in back and re.search(r"after \d+s down; \d+ attempts failed", back), back
    assert int(re.findall(r"(\d+) attempts failed", back)[0]) >= failed
    assert not [line for line in during if "failed (attempt" in line]  # per-attempt lines: DEBUG only


@pytest.mark.parametrize("fault", ["down_503", "refuse"])
async def test_bucket_down_then_back_keeps_serving_and_lists_the_backlog_in_order(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, fault: Mode) -> None:
    owncast.late_tails = LateTails()  # a segment's tail late, every segment, before, during and after
    # Without content steering: the bucket's playlists list only what landed, so a backlog waits for the
    # bucket and is listed in order when it is back. With it (the default), they list what is not in the
    # bucket yet at its VM URI while players are steered there (tests/test_steering_bucket_pathway.py).
    async with running(tmp_path, seaweed, owncast, PATHWAYS="bucket") as rig:
        watch, proxy = rig.watch, rig.proxy
        failures_before = await rig.metric("hls_broadcaster_upload_failures_total")
        refusals_before = await rig.metric("hls_broadcaster_upload_failures_total", reason="SlowDown")
        logged_before = len(rig.service.lines)

        # a. The bucket goes down.
        down_at = time.monotonic()
        await proxy.set_mode(fault)
        health = await rig.health_matching(503, CAUSE[fault], timeout=20)
        cause = health["status"]
        detected = time.monotonic() - down_at
        assert health["storage_reachable"] is False and health["stream"] == "live"
        assert await rig.metric("hls_broadcaster_storage_up") == 0
        failures = await rig.metric("hls_broadcaster_upload_failures_total")
        assert failures > failures_before

        async def failures_rise() -> float:
            now = await rig.metric("hls_broadcaster_upload_failures_total")
            return now if now > failures else 0

        failed = await rig.until(failures_rise, 20, "upload failures keep rising (uploads are retried)")

        async def backlog_waits() -> dict[int, list[str]] | None:
            backlog = rig.backlog()
            return backlog if all(len(backlog[v]) >= BACKLOG for v in VARIANTS) else None

        backlog = await rig.until(backlog_waits, 30, f"{BACKLOG} segments per variant wait (the outage lasts)")
        assert (await rig.health())[0] == 503
        # Nothing new is listed while the bucket is down: every segment listed so far was stored by a PUT
        # the bucket answered 200 (the last good window stays, without ENDLIST).
        stored = {key_tail(r.path) for r in proxy.seen("pass", "PUT") if r.status == 200}
        listed = {key_tail(u) for u in watch.first.at}
        assert listed <= stored, sorted(listed - stored)
        assert watch.seen.ended == set() and all(len(watch.current[v]) >= 3 for v in VARIANTS)
        if fault == "down_503":
            assert proxy.counts["down_503"] > 0

        # b. The bucket comes back.
        up_at = time.monotonic()
        await proxy.pass_through()

        await rig.until(lambda: rig.listed_all(backlog), 30, "the backlog is listed")
        listed_after = time.monotonic() - up_at
        await rig.health_matching(200, r"^ok$", timeout=30)
        healthy_after = time.monotonic() - up_at
        await outage_told_in_a_few_lines(rig, logged_before, failed - failures_before)
        if fault == "down_503":  # every PUT the bucket refused (retries and first tries) is one failure counted
            counted = (await rig.metric("hls_broadcaster_upload_failures_total", reason="SlowDown")
                       - refusals_before)
            refused = len(proxy.seen("down_503", "PUT"))
            assert refused > 0 and counted == refused, f"the bucket refused {refused} PUTs; {counted} counted"
        backlog_uris = {u for v in VARIANTS for u in watch.seen.uris(v) if name(u) in backlog[v]}

        async def backlog_slid_out() -> bool:
            return not backlog_uris & {u for v in VARIANTS for u in watch.current[v]}

        await rig.until(backlog_slid_out, WINDOW_SECONDS + 15, "the backlog slides out of the window")

        await rig.settled()  # every version passed VariantSetChecker, every URL was in the bucket
        assert not watch.seen.after_discontinuity, "no segment was lost, so no discontinuity"
        assert sum((await rig.lost()).values()) == 0
        assert watch.seen.ended == set()
        # Each backlog segment stayed listed about a window (WINDOW_SECONDS - target duration = 4 s) rather
        # than sliding out at once; half of it, since polls on a loaded machine come late at both ends.
        shown = {u: watch.last_seen[u] - watch.first.at[u] for u in backlog_uris}
        assert min(shown.values()) >= (WINDOW_SECONDS - TARGET) / 2, sorted(shown.values())
        # The segments still listed are in the bucket now, too.
        for v in VARIANTS:
            for uri in watch.current[v]:
                async with rig.http.get(uri) as r:
                    assert r.status == 200, uri
        print(
            f"\n[{fault}] /health 503 after {detected:.2f}s ({cause!r}); backlog {[len(b) for b in backlog.values()]} "
            f"segments listed {listed_after:.2f}s and /health ok {healthy_after:.2f}s after the bucket came "
            f"back; backlog shown {min(shown.values()):.2f}-{max(shown.values()):.2f}s; proxy {dict(proxy.counts)}; "
            f"playlist answers {dict(watch.statuses)}; /health said {rig.health_log}"
        )


# -- c: an outage longer than Owncast keeps its files ----------------------------------------------------


async def test_segments_deleted_during_an_outage_are_counted_and_marked_as_a_gap_ffmpeg_reads_across(
    tmp_path: Path, recordings: Recordings, seaweed: SeaweedS3
) -> None:
    # Owncast keeps only the 3 newest segments per variant, cleaned twice a second. Without content
    # steering: with the VM's pathway (PATHWAYS=bucket,vm) nothing is lost, each segment uploaded from the
    # VM's copy (tests/test_publisher_ahead.py).
    async with (
        OwncastEmulator(tmp_path / "hls", cleanup=Cleanup(keep=3, interval=0.5), ledger=Ledger(), recordings=recordings) as owncast,
        running(tmp_path, seaweed, owncast, PATHWAYS="bucket") as rig,
    ):
        watch, proxy = rig.watch, rig.proxy
        # A real HLS client reads the live stream across the outage.
        player = await asyncio.create_subprocess_exec(
            ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "info",
            "-i", f"{rig.service.url}/live/playlist.m3u8", "-c", "copy", "-f", "null", "-",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert player.stderr is not None
        player_said = asyncio.create_task(player.stderr.read())  # drained all along
        try:
            await proxy.down_503()
            await rig.health_matching(503, r"storage unreachable \(SlowDown\)", timeout=20)
            # Owncast cleans up twice a second from before the service starts, so a slow start loses segments
            # too: only the outage's are this test's, after the last listed as it began, counted from then.
            async def as_it_began() -> tuple[dict[int, int], dict[tuple[str, str], float]] | None:
                listed = {v: max(watch.listed_numbers(v)) for v in VARIANTS}
                counted = await rig.lost()
                return (listed, counted) if listed == {v: max(watch.listed_numbers(v)) for v in VARIANTS} else None

            last_before, lost_before = await rig.until(as_it_began, 20, "the listing still across a scrape")

            def segment(v: int, n: int) -> Path:
                return owncast.variant_dir(v) / f"stream-{owncast.shortid}-{n}.ts"

            def newest(v: int) -> int:
                written = owncast.variant_dir(v).glob(f"stream-{owncast.shortid}-*.ts")
                return max((owncast_number(p.name) for p in written), default=-1)

            async def deleted_unuploaded() -> bool:
                # The three after the last listed were written (Owncast is well past them) and cleaned up.
                return all(newest(v) >= last_before[v] + 7
                           and not any(segment(v, n).exists() for n in range(last_before[v] + 1, last_before[v] + 4))
                           for v in VARIANTS)

            await rig.until(deleted_unuploaded, 30, "Owncast's cleanup to delete segments we still had to upload")
            gone = {v: list(range(last_before[v] + 1, last_before[v] + 4)) for v in VARIANTS}
            up_at = time.monotonic()
            await proxy.pass_through()

            async def past_the_gap() -> bool:
                return all(max(watch.listed_numbers(v)) > max(gone[v]) + 2 for v in VARIANTS)

            await rig.until(past_the_gap, 30, "segments after the gap are listed")
            resumed_after = time.monotonic() - up_at
            lost = await rig.lost()
            assert sum(n for (_, reason), n in lost.items() if reason == "deleted") > 0, lost
            await rig.health_matching(200, r"^ok$", timeout=30)
            await owncast.stop_stream(offline=True)  # Owncast's offline tail + ENDLIST
            await rig.until(lambda: _ended(watch), 20, "both playlists end with ENDLIST")
            async with asyncio.timeout(40):
                await player.wait()
        finally:
            if player.returncode is None:
                player.kill()
                await player.wait()
        played = (await player_said).decode(errors="replace")
        opened = played.count("Opening '")
        said = [
            ln for ln in played.splitlines() if "Opening '" not in ln and "Last message repeated" not in ln
        ]
        assert player.returncode == 0, played[-3000:]
        assert "Media sequence changed" not in played and "expired from playlists" not in played, played

        await rig.settled(in_order=False)
        missing: dict[int, list[int]] = {}
        for v in VARIANTS:
            listing = watch.seen.uris(v)
            numbers = [owncast_number(u) for u in listing]
            missing[v] = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
            watch.seen.assert_in_owncast_order(v, skipped=missing[v], span=True)
            # A discontinuity exactly where Owncast's numbering jumps, nowhere else.
            for before, after in itertools.pairwise(listing):
                jump = owncast_number(after) != owncast_number(before) + 1
                assert (after in watch.seen.after_discontinuity) == jump, (v, name(before), name(after))
        # One hole, dropped in every variant; a segment deleted in one variant alone just as the bucket
        # came back (the other's copy uploaded) is an EXT-X-GAP entry there, not a hole.
        assert missing[0] and missing[0] == missing[1], missing
        gapped = {v: sorted(owncast_number(u) for u in watch.seen.gaps.get(v, ())) for v in VARIANTS}
        lost = {k: n - lost_before.get(k, 0.0) for k, n in (await rig.lost()).items()}
        assert {reason for (_, reason), n in lost.items() if n} <= {"deleted", "sibling_lost"}, lost
        for v in VARIANTS:  # every hole and every gap entry since the outage began is a counted loss
            counted = sum(n for (var, _), n in lost.items() if var == str(v))
            since = [n for n in missing[v] + gapped[v] if n > last_before[v]]
            assert counted == len(since), (lost, missing, gapped, last_before)
        print(
            f"\n[gap] lost {missing[0]} ({len(missing[0])} slots), gap entries {gapped}, metrics {lost}; listing resumed "
            f"{resumed_after:.2f}s after the bucket came back; ffmpeg exit 0, opened {opened} URLs and "
            "said:\n  " + "\n  ".join(said)
        )


async def _ended(watch: Watch) -> bool:
    return watch.seen.ended == set(VARIANTS)


# -- d: uploads that hang ----------------------------------------------------------------------------


async def test_hung_uploads_are_retried_after_upload_timeout_and_health_says_so(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    async with running(tmp_path, seaweed, owncast, UPLOAD_TIMEOUT="1") as rig:
        watch, proxy = rig.watch, rig.proxy
        hang_at = time.monotonic()
        await proxy.set_mode("hang")
        health = await rig.health_matching(503, r"storage unreachable \(\w*Timeout\w*\)", timeout=20)
        detected = time.monotonic() - hang_at
        assert health["storage_reachable"] is False

        # Until one segment reached the hung bucket twice, abandoned by the service the first time.
        async def tried_again() -> bool:
            hung = proxy.seen("hang", "PUT")
            tries = collections.Counter(r.path for r in hung)
            return any(tries[r.path] >= 2 for r in hung if r.outcome == "client_gave_up")

        await rig.until(tried_again, 30, "a hung PUT abandoned and the same segment tried again")
        timeouts = await rig.metric("hls_broadcaster_upload_failures_total")
        assert timeouts > 0 and await rig.metric("hls_broadcaster_storage_up") == 0
        hung = proxy.seen("hang", "PUT")
        gave_up = [r.duration for r in hung if r.outcome == "client_gave_up" and r.duration is not None]
        # Each attempt was abandoned after UPLOAD_TIMEOUT (1 s), not botocore's 60 s or the default 5 s. The
        # service's clock starts before the proxy sees the request (an attempt may wait for a connection),
        # so only the longest is held to the lower bound.
        assert gave_up and max(gave_up) >= 0.5 and all(d < 4.5 for d in gave_up), sorted(gave_up)
        # ...and tried again: the same segment reached the hung bucket more than once.
        tries = collections.Counter(r.path for r in hung)
        assert max(tries.values()) >= 2, tries
        backlog = rig.backlog()

        await proxy.pass_through()
        up_at = time.monotonic()

        await rig.until(lambda: rig.listed_all(backlog), 30,
                        "everything Owncast wrote during the hang is listed")
        listed_after = time.monotonic() - up_at
        await rig.health_matching(200, r"^ok$", timeout=30)
        await rig.settled()
        assert sum((await rig.lost()).values()) == 0
        print(
            f"\n[hang] /health said Timeout after {detected:.2f}s ({health['status']!r}); attempts abandoned "
            f"after {min(gave_up):.2f}-{max(gave_up):.2f}s; most tries of one segment {max(tries.values())}; "
            f"backlog {[len(b) for b in backlog.values()]} listed {listed_after:.2f}s after the bucket answered"
        )


# -- e: a bucket slower than real time -----------------------------------------------------------------

SLOW_BYTES_PER_SECOND = 40_000  # a 1 s segment is ~90 kB in variant 0 (over 2 s) and ~45 kB in variant 1


async def test_slow_bucket_is_reported_slower_than_real_time(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator) -> None:
    async with running(tmp_path, seaweed, owncast, UPLOAD_TIMEOUT="10") as rig:
        proxy = rig.proxy
        await proxy.set_mode("slow", bytes_per_second=SLOW_BYTES_PER_SECOND)
        health = await rig.health_matching(503, r"slower than real time", timeout=20)

        async def ratio_above_1() -> float:
            value = await rig.metric("hls_broadcaster_upload_realtime_ratio")
            return value if value > 1 else 0

        ratio = await rig.until(ratio_above_1, 20, "hls_broadcaster_upload_realtime_ratio above 1")
        slow_puts = [r.duration for r in proxy.seen("slow", "PUT") if r.outcome == "forwarded" and r.duration]
        assert slow_puts and max(slow_puts) > TARGET  # uploads really took longer than the media they carry
        assert await rig.metric("hls_broadcaster_storage_up") == 1  # slow, not down

        await proxy.pass_through()

        async def caught_up() -> float | None:
            status, body = await rig.health()
            value = await rig.metric("hls_broadcaster_upload_realtime_ratio")
            if status == 200 and body["status"] == "ok" and value < 1:
                return max(value, 1e-9)
            return None

        await rig.until(caught_up, 30, "/health ok and the ratio below 1 once the bucket is fast again")
        await rig.settled()
        print(
            f"\n[slow] {health['status']!r}; ratio {ratio}; slow PUTs {min(slow_puts):.2f}-{max(slow_puts):.2f}s"
        )
