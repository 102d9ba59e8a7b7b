"""An outage longer than the copies the VM keeps for it, with real parts: SeaweedFS behind a FaultProxy that
refuses every upload, the emulator's stream (Owncast's cleanup keeping 3 segments), the service with the
VM's pathway and STATE_DIR on a disk a few MB above DISK_RESERVE. Once the copies reach the bound the oldest
go, and Owncast has deleted their files: those segments exist nowhere. After the bucket is back, every entry
the live playlists and the recording list, on either pathway, answers Owncast's bytes or is an EXT-X-GAP;
the losses are counted (reason="copy_dropped"), said in one WARNING and in the line that says the bucket is
back, and /health said what the outage kept and lost. Past the bound the waiting uploads and the memory
stay flat."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.demo.emulator import Cleanup, Ledger, OwncastEmulator
from broadcaster.vm.copy_files import DISK_RESERVE
from broadcaster.demo.recordings import Recordings
from broadcaster.demo.seaweed import SeaweedS3
from tests.support.disks import small_tmpfs
from tests.support.fault_proxy import FaultProxy
from tests.support.hls_checker import MediaPlaylistChecker
from tests.support.processes import rss_kb
from tests.support.scrape import by_label, scraped, total
from tests.support.service_process import ServiceProcess, service_env
from tests.support.listing import listing
from tests.support.observe import health
from tests.support.waiting import until
from tests.support.whole import finished

pytestmark = [pytest.mark.integration, pytest.mark.faults]

VARIANTS = (0, 1)
# STATE_DIR's disk: its reserve and 2 MB, about 1 MB of them for copies (the state's files take some):
# some 8 s of the emulator's two variants (about 130 KB a second).
DISK_MB = DISK_RESERVE // (1024 * 1024) + 2
START_TIMEOUT = 60.0


def entries(text: str) -> list[tuple[str, bool]]:
    """A media playlist's entries: (URI, listed with EXT-X-GAP)."""
    return [(e.uri, e.gap) for e in listing(text)]


async def lost(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """segments_lost_total{reason="copy_dropped"} by variant."""
    samples = await scraped(http, url)
    return by_label(samples, "hls_broadcaster_segments_lost_total", "variant", reason="copy_dropped")


# Segments lost past the copies' bound while the memory is watched: some 14 s of the emulator's stream, many
# times what the copies hold (about 8 s) and what Owncast keeps (3 s).
PAST_THE_BOUND = 28
# Uploads that may wait beside one per copy on disk: Owncast's files (3 per variant), a second of new
# segments before the next sweep, and those in an attempt.
WAITING_BESIDE_COPIES = 3 * len(VARIANTS) + 2 * len(VARIANTS) + 4


async def flat_past_the_bound(http: aiohttp.ClientSession, url: str, state: Path, pid: int) -> None:
    """Past the bound the outage costs nothing more: the uploads that wait stay those whose bytes are still
    on disk (a copy, or Owncast's file; bucket/turns.py releases the others, which end lost), and the
    memory with them, not one released per turn of the bucket's backoff while two segments a second join."""
    beside: list[int] = []

    async def past() -> int:
        _, body = await health(http, url)
        copies = len(list((state / "segments").glob("*.seg")))
        beside.append(body["outage"]["uploads_waiting"] - copies)
        return int(sum((await lost(http, url)).values()))

    first = await past()
    rss = rss_kb(pid)
    await until(lambda: _at_least(past, first + PAST_THE_BOUND), f"{PAST_THE_BOUND} more segments lost", 90,
                every=0.5)
    grown = rss_kb(pid) - rss
    print(f"\n[copies lost] past the bound: uploads waiting beside the copies {min(beside)}..{max(beside)} "
          f"over {len(beside)} looks; RSS {rss} KB, {grown:+d} KB after {PAST_THE_BOUND} more segments lost")
    assert max(beside) <= WAITING_BESIDE_COPIES, beside
    # RSS also grows as the rewind window and the records of segments' URLs fill, outage or not (15-33 KB a
    # segment; tests/test_outage_memory.py measures the outage's part alone). Bound: three quarters of a
    # segment (48 KB) per segment; an upload that kept its body would cost 2.5 segments.
    assert grown < PAST_THE_BOUND * 48, f"RSS {rss} KB then {grown:+d} KB over {PAST_THE_BOUND} segments lost"


async def _at_least(look: Callable[[], Awaitable[int]], n: int) -> bool:
    return await look() >= n


async def test_segments_whose_copies_were_dropped_are_gaps_everywhere_counted_and_said_once(
        tmp_path: Path, seaweed: SeaweedS3, recordings: Recordings) -> None:
    ledger = Ledger()
    with small_tmpfs(tmp_path / "state", size_mb=DISK_MB) as state:
        await lost_then_back(tmp_path, state, seaweed, recordings, ledger)


async def lost_then_back(tmp_path: Path, state: Path, seaweed: SeaweedS3, recordings: Recordings,
                         ledger: Ledger) -> None:
    async with (OwncastEmulator(tmp_path / "hls", cleanup=Cleanup(keep=3, interval=0.5), ledger=ledger,
                                recordings=recordings) as owncast, FaultProxy(seaweed.endpoint_url) as proxy):
        env = service_env(owncast.hls_dir, seaweed, state, S3_ENDPOINT_URL=proxy.url,
                          PATHWAYS="bucket,vm", WINDOW_SECONDS="5",
                          REWIND_SECONDS="240", KEEP_RECORDINGS="true", CLEANUP_MARGIN="0")
        async with (ServiceProcess(env, tmp_path, start_timeout=START_TIMEOUT) as service,
                    aiohttp.ClientSession() as http):
            url = service.url

            async def listing(v: int, pathway: str = "") -> list[tuple[str, bool]]:
                async with http.get(f"{url}/live/{pathway}{v}/playlist.m3u8") as r:
                    return entries(await r.text()) if r.status == 200 else []

            async def started() -> bool:
                return all([len(await listing(v)) >= 3 for v in VARIANTS])

            await until(started, "3 segments listed per variant", 60, every=0.3)
            rss_before = rss_kb(service.pid)
            before = await scraped(http, url)
            await proxy.set_mode("refuse")
            said: list[dict[str, Any]] = []

            async def copies_lost() -> bool:
                outage = (await health(http, url))[1].get("outage")
                if outage is not None:
                    said.append(outage)
                return sum((await lost(http, url)).values()) >= 4

            await until(copies_lost, "copies dropped for the disk's reserve, their files deleted: segments "
                        "lost", 120, every=0.5, detail=lambda: said[-1:])
            # While it lasts, /health says what is kept, and what is lost so far.
            last = said[-1]
            assert last["segments_lost"] >= 1 and last["uploads_waiting"] > 0, last
            assert last["copies_bytes"] > 0, last
            # The disk's reserve bounds them here, not VM_COPIES_MB's 1024 MB: full, as the losses say.
            assert last["copies_bound_by"] == "disk_reserve", last
            assert last["copies_bytes"] <= last["copies_bound_bytes"] < 1024 * 1024 * 1024, last
            await flat_past_the_bound(http, url, state, service.pid)
            await proxy.pass_through()

            async def caught_up() -> bool:
                # Read as a player does: the probes of what is listed run while players read (a failed one
                # in the outage is cleared by the next that answers, steering/probe.py's Pace).
                await listing(0)
                _, body = await health(http, url)
                copies = any((state / "segments").glob("*.seg"))
                return "outage" not in body and body["status"] == "ok" and not copies

            await until(caught_up, "the backlog uploaded, /health ok", 90, every=0.5)
            counted = await lost(http, url)
            # The bucket was tried one upload per turn of its backoff (bucket/turns.py), whatever waited: each
            # segment's own first attempt and a few turns.
            after = await scraped(http, url)
            failed, came = (total(after, name) - total(before, name) for name in (
                "hls_broadcaster_upload_failures_total", "hls_broadcaster_segments_uploaded_total"))
            came += sum(counted.values())
            assert failed < 1.5 * came, f"{failed:.0f} failed attempts for {came:.0f} segments in the outage"
            # Memory back near where it began (within a tenth: the backlog's burst of uploads at once leaves the
            # allocator's high-water mark).
            rss_after = rss_kb(service.pid)
            print(f"\n[copies lost] RSS {rss_before} KB before the outage, {rss_after} KB after; {failed:.0f} "
                  f"failed attempts for {came:.0f} segments")
            assert rss_after < rss_before * 1.1, (rss_before, rss_after)
            # Every gap is a segment counted lost: most copy_dropped, a few sibling_lost (the same slot's
            # copy dropped in the other variant only: the variants keep their slots alike).
            reasons = by_label(after, "hls_broadcaster_segments_lost_total", "reason")
            every = by_label(after, "hls_broadcaster_segments_lost_total", "variant")
            for pathway in ("", "vm/"):
                for v in VARIANTS:
                    listed = await listing(v, pathway)
                    gaps = [uri for uri, gap in listed if gap]
                    assert gaps and counted.get(str(v), 0) >= 1, (pathway, v, listed, counted)
                    assert len(gaps) <= every.get(str(v), 0), (pathway, v, gaps, counted, reasons)
                    for uri, gap in listed:
                        if gap:
                            continue
                        async with http.get(uri if uri.startswith("http") else url + uri) as r:
                            body = await r.read()
                        assert r.status == 200, (pathway, v, uri, r.status, gaps)
                        local = owncast.variant_dir(v) / uri.rsplit("/", 1)[1]
                        await finished(ledger, local)
                        assert (problem := ledger.mismatch(local, body)) is None, (uri, problem)
            log = service.lines
            first = [line for line in log if "a segment waiting on the bucket is lost" in line]
            assert len(first) == 1, first
            assert any("STATE_DIR's disk is down to its reserve" in line for line in log), log[-30:]
            back = [line for line in log if "bucket reachable again" in line]
            assert back and "copy_dropped" in back[0], back
            per_segment = [line for line in log if " WARNING " in line and "is lost (copy_dropped)" in line]
            assert per_segment == [], per_segment[:3]

            # The stream's recording: the same gaps, every other entry in the bucket.
            await owncast.stop_stream(offline=True)
            recording = f"{seaweed.public_url}/live/0/recording-{owncast.shortid}.m3u8"

            async def recorded() -> str | None:
                async with http.get(recording) as r:
                    return await r.text() if r.status == 200 else None

            vod = await until(recorded, "the recording's playlist in the bucket", 40, every=0.5)
            MediaPlaylistChecker(allow_playlist_type=True).assert_ok(vod)
            kept = entries(vod)
            gapped = {uri for uri, gap in kept if gap}
            assert gapped, vod
            live_gaps = {uri.rsplit("/", 1)[1] for uri, gap in await listing(0) if gap}
            assert live_gaps <= gapped, (live_gaps, gapped)
            for uri, gap in kept:
                if not gap:
                    async with http.get(f"{seaweed.public_url}/live/0/{uri}") as r:
                        assert r.status == 200, (uri, r.status)
            assert await service.stop() == 0
        assert service.problems() == [], service.problems()
        print(f"\n[copies lost] segments_lost_total copy_dropped {counted}; /health in the outage {said[-1]}")
